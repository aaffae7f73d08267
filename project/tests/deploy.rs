//! Static checks of the deployment files: `project/docker-compose.yml`, `project/Dockerfile`,
//! `project/k8s/` and the container health check script.
//!
//! No Docker engine and no cluster run here, so these tests validate what can be validated
//! without one: the compose file with `docker-compose config` (Debian's package works offline),
//! every manifest with `kubernetes-validate --strict` (it ships the API schemas), and the
//! cross-references a schema cannot see (every built service is a workspace binary, compose and
//! Kubernetes give each service the same settings, probes hit /ready and /health, only four
//! ports are published). The release build "as the Dockerfile builds it" is
//! `project/deploy-check.sh build`, run once by CI; it is too slow for a test.
//!
//! The tools come from `bash project/infra.sh tools` (into the repository's `.local/venv`).
//! The ports and names in all these files are checked against the wiring table in [`wiring`].

// A module of this binary (not a test target of its own) so that it shares the YAML readers.
#[path = "deploy/wiring.rs"]
mod wiring;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The services the compose file must build, each a `[[bin]]` named after its crate.
const SERVICES: [&str; 6] = ["authentication", "broker", "frontend", "listener", "logger", "mailer"];
/// Services Kubernetes must run with at least two replicas.
const SCALED_OUT: [&str; 3] = ["broker", "logger", "listener"];
/// The host ports the compose file may publish, and who publishes each (RabbitMQ's management
/// UI is the image's port, not one of the system's).
const PUBLISHED: [(u16, &str); 5] = [
    (service_kit::wiring::BROKER_PORT, "broker"),
    (service_kit::wiring::FRONTEND_PORT, "frontend"),
    (service_kit::wiring::MAILCATCHER_PORT, "mailhog"),
    (15672, "rabbitmq"),
    (PROMETHEUS_PORT, "prometheus"),
];
/// Prometheus's own port (the image's default), published by compose.
const PROMETHEUS_PORT: u16 = 9090;
/// The Kubernetes versions whose schemas the manifests must satisfy: the newest that
/// kubernetes-validate ships, and an older release still widely run.
const K8S_VERSIONS: [&str; 2] = ["1.37.0", "1.31.0"];
/// The exact build command of the Dockerfile and of `deploy-check.sh build`.
const DOCKERFILE_BUILD: &str = r#"cargo build --release --locked --bin "${SERVICE}""#;
const DEPLOY_CHECK_BUILD: &str = r#"cargo build --release --locked --bin "$s""#;

// --- helpers -------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("project/ has a parent").to_path_buf()
}

fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tool from the repository's venv, else from PATH; a clear failure when neither has it.
fn tool(name: &str) -> PathBuf {
    let venv = repo_root().join(".local/venv/bin").join(name);
    if venv.is_file() {
        return venv;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "`{name}` was found neither in {} nor on PATH: run `bash project/infra.sh tools`",
        repo_root().join(".local/venv/bin").display()
    );
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
}

fn run(command: &mut Command) -> Output {
    let shown = format!("{command:?}");
    command.output().unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
}

fn run_ok(command: &mut Command) -> Output {
    let shown = format!("{command:?}");
    let output = run(command);
    assert!(
        output.status.success(),
        "{shown} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Every YAML document of `yaml` as JSON, parsed by PyYAML from the venv that
/// `infra.sh tools` provisions (kubernetes-validate depends on it), so that the tests need no
/// YAML crate.
fn yaml_documents(yaml: &[u8]) -> Vec<Value> {
    let venv_python = repo_root().join(".local/venv/bin/python");
    let python = if venv_python.is_file() { venv_python } else { PathBuf::from("python3") };
    let mut child = Command::new(&python)
        .args([
            "-c",
            "import sys, json, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cannot start the venv's python");
    child.stdin.take().expect("stdin is piped").write_all(yaml).expect("cannot write YAML to python");
    let output = child.wait_with_output().expect("python did not finish");
    assert!(
        output.status.success(),
        "{} could not read the YAML (run `bash project/infra.sh tools` for a venv with PyYAML): {}",
        python.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("python printed JSON")
}

fn yaml_file(path: &Path) -> Vec<Value> {
    yaml_documents(&std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())))
}

fn compose_file() -> PathBuf {
    project_dir().join("docker-compose.yml")
}

/// The compose file as docker-compose resolves it (anchors merged, paths absolute).
fn compose_config() -> Value {
    let output = run_ok(Command::new(tool("docker-compose")).arg("-f").arg(compose_file()).arg("config"));
    yaml_documents(&output.stdout).into_iter().next().expect("docker-compose config printed a document")
}

fn compose_services(config: &Value) -> &serde_json::Map<String, Value> {
    config["services"].as_object().expect("the compose file has services")
}

/// The Dockerfile-built services: compose service name -> SERVICE build arg.
fn built_services(config: &Value) -> BTreeMap<String, String> {
    compose_services(config)
        .iter()
        .filter(|(_, service)| service.get("build").is_some())
        .map(|(name, service)| {
            let arg = service["build"]["args"]["SERVICE"]
                .as_str()
                .unwrap_or_else(|| panic!("compose service `{name}` builds without a SERVICE build arg"));
            (name.clone(), arg.to_owned())
        })
        .collect()
}

fn k8s_dir() -> PathBuf {
    project_dir().join("k8s")
}

/// The manifest files (everything under k8s/ but the kustomization), sorted.
fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .expect("project/k8s exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    files
}

fn k8s_resources() -> Vec<Value> {
    manifest_files().iter().flat_map(|f| yaml_file(f)).collect()
}

fn of_kind<'a>(resources: &'a [Value], kind: &str) -> Vec<&'a Value> {
    resources.iter().filter(|r| r["kind"] == kind).collect()
}

fn named<'a>(resources: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    resources.iter().find(|r| r["kind"] == kind && r["metadata"]["name"] == name)
}

fn str_of(value: &Value) -> &str {
    value.as_str().unwrap_or_else(|| panic!("expected a string, found {value}"))
}

/// `cargo metadata` for the workspace members.
fn workspace_metadata() -> Value {
    let output = run_ok(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["metadata", "--no-deps", "--format-version", "1", "--locked"])
            .current_dir(repo_root()),
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

// --- compose -------------------------------------------------------------------------------

#[test]
fn docker_compose_accepts_the_compose_file() {
    run_ok(Command::new(tool("docker-compose")).arg("-f").arg(compose_file()).args(["config", "-q"]));
}

#[test]
fn every_service_the_compose_file_builds_is_a_binary_of_the_workspace_named_after_its_crate() {
    let config = compose_config();
    let built = built_services(&config);
    let metadata = workspace_metadata();
    let binaries: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .flat_map(|package| {
            let version = str_of(&package["version"]);
            package["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .filter(|t| t["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin")))
                .filter(|t| t["name"] == package["name"])
                .map(move |_| (str_of(&package["name"]), version))
        })
        .collect();

    for (name, service) in &built {
        assert_eq!(name, service, "compose service `{name}` builds SERVICE={service}: name them alike");
        let version = binaries.get(service.as_str()).unwrap_or_else(|| {
            panic!("compose builds SERVICE={service}, but no workspace crate `{service}` has a binary `{service}`")
        });
        let build = &config["services"][name]["build"];
        let context = Path::new(str_of(&build["context"]));
        assert_eq!(
            context.canonicalize().expect("the build context exists"),
            repo_root().canonicalize().expect("repo root"),
            "`{name}` must build with the repository root as context"
        );
        assert_eq!(build["dockerfile"], "project/Dockerfile", "`{name}` must build from project/Dockerfile");
        assert_eq!(
            config["services"][name]["image"],
            format!("micro-rs/{service}:{version}"),
            "`{name}`'s image tag must be micro-rs/<crate>:<crate version> (the Kubernetes manifests use it)"
        );
    }
    let built: BTreeSet<&str> = built.values().map(String::as_str).collect();
    assert_eq!(
        built,
        BTreeSet::from(SERVICES),
        "the compose file must build exactly the five services and the frontend"
    );
}

#[test]
fn deploy_check_builds_exactly_the_services_of_the_compose_file() {
    let output = run_ok(
        Command::new("bash").arg(project_dir().join("deploy-check.sh")).arg("services").current_dir(repo_root()),
    );
    let listed: BTreeSet<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
    let built: BTreeSet<String> = built_services(&compose_config()).into_values().collect();
    assert_eq!(listed, built, "deploy-check.sh's SERVICE extraction disagrees with docker-compose's reading");
}

#[test]
fn only_the_broker_the_frontend_mailhog_prometheus_and_the_rabbitmq_ui_are_published() {
    let config = compose_config();
    let mut published = BTreeSet::new();
    for (name, service) in compose_services(&config) {
        for port in service.get("ports").and_then(Value::as_array).into_iter().flatten() {
            let host_port = port["published"]
                .as_u64()
                .or_else(|| port["published"].as_str().and_then(|p| p.parse().ok()))
                .unwrap_or_else(|| panic!("`{name}` has a port without a fixed published port: {port}"));
            assert_eq!(port["target"], host_port, "`{name}` publishes {host_port} onto another container port");
            published.insert((u16::try_from(host_port).expect("a port"), name.clone()));
        }
    }
    let expected: BTreeSet<(u16, String)> = PUBLISHED.iter().map(|(p, s)| (*p, (*s).to_owned())).collect();
    assert_eq!(published, expected);
}

#[test]
fn every_container_has_a_health_check_and_every_dependency_waits_until_healthy() {
    let config = compose_config();
    let services = compose_services(&config);
    for (name, service) in services {
        let test = service["healthcheck"]["test"].as_array();
        assert!(
            test.is_some_and(|t| t.len() > 1 && t[0] == "CMD"),
            "`{name}` needs a health check in exec form, found {}",
            service["healthcheck"]
        );
        if let Some(depends) = service.get("depends_on") {
            for (dependency, how) in depends.as_object().expect("depends_on in long form") {
                assert!(services.contains_key(dependency), "`{name}` depends on unknown `{dependency}`");
                assert_eq!(how["condition"], "service_healthy", "`{name}` must wait for `{dependency}` to be healthy");
            }
        }
    }
    for (name, service) in built_services(&config) {
        let test = &services[&name]["healthcheck"]["test"];
        assert_eq!(test[1], "/usr/local/bin/healthcheck", "`{service}` must probe with the image's healthcheck");
    }
    // The stateful back ends keep their data in named volumes.
    let volumes = config["volumes"].as_object().expect("named volumes");
    for (name, data_dir) in
        [("postgres", "/var/lib/postgresql/data"), ("mongo", "/data/db"), ("rabbitmq", "/var/lib/rabbitmq")]
    {
        let mounts = services[name]["volumes"].as_array().unwrap_or_else(|| panic!("`{name}` has no volume"));
        // Long form {source, target} (compose v2) or short form "source:target[:mode]" (v1).
        let (source, _) = mounts
            .iter()
            .map(|m| match m.as_str() {
                Some(short) => {
                    let mut parts = short.split(':');
                    (parts.next().unwrap_or_default(), parts.next().unwrap_or_default())
                }
                None => (m["source"].as_str().unwrap_or_default(), m["target"].as_str().unwrap_or_default()),
            })
            .find(|(_, target)| *target == data_dir)
            .unwrap_or_else(|| panic!("`{name}` does not mount a volume at {data_dir}"));
        assert!(volumes.contains_key(source), "`{name}` mounts `{source}`, which is not a named volume");
    }
}

#[test]
fn every_setting_the_compose_file_passes_is_one_the_service_reads() {
    let config = compose_config();
    let root = repo_root();
    let shared = rust_sources(&root.join("service-kit/src"));
    for (name, service) in built_services(&config) {
        let own = rust_sources(&root.join(&service).join("src"));
        let environment = config["services"][&name]["environment"].as_object().expect("environment map");
        for key in environment.keys() {
            let literal = format!("\"{key}\"");
            assert!(
                own.contains(&literal) || shared.contains(&literal),
                "compose sets {key} for `{service}`, but neither {service}/src nor service-kit/src names it"
            );
        }
    }
}

fn rust_sources(dir: &Path) -> String {
    let mut all = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return all };
    for entry in entries {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            all.push_str(&rust_sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            all.push_str(&std::fs::read_to_string(&path).expect("readable source"));
        }
    }
    all
}

// --- Dockerfile and the health check script --------------------------------------------------

#[test]
fn the_dockerfile_and_deploy_check_build_with_the_same_cargo_command() {
    let dockerfile = std::fs::read_to_string(project_dir().join("Dockerfile")).expect("project/Dockerfile");
    let script = std::fs::read_to_string(project_dir().join("deploy-check.sh")).expect("project/deploy-check.sh");
    assert!(dockerfile.contains(DOCKERFILE_BUILD), "the Dockerfile no longer runs `{DOCKERFILE_BUILD}`");
    assert!(script.contains(DEPLOY_CHECK_BUILD), "deploy-check.sh no longer runs `{DEPLOY_CHECK_BUILD}`");
    assert!(dockerfile.contains("ARG SERVICE"), "the Dockerfile must take the service as a build argument");
    assert!(dockerfile.contains("\nUSER 10001:10001\n"), "the runtime image must run as the numeric non-root user");
}

#[test]
fn every_file_the_dockerfile_copies_from_the_context_exists_and_is_not_docker_ignored() {
    let root = repo_root();
    let dockerfile = std::fs::read_to_string(project_dir().join("Dockerfile")).expect("project/Dockerfile");
    let ignored: Vec<String> = std::fs::read_to_string(root.join(".dockerignore"))
        .expect(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/').to_owned())
        .collect();
    let mut copies = 0;
    for line in dockerfile.lines().map(str::trim).filter(|l| l.starts_with("COPY ")) {
        let words: Vec<&str> = line.split_whitespace().skip(1).filter(|w| !w.starts_with("--chmod")).collect();
        if words.iter().any(|w| w.starts_with("--from=")) {
            continue;
        }
        copies += 1;
        for source in &words[..words.len() - 1] {
            assert!(root.join(source).exists(), "the Dockerfile copies `{source}`, which does not exist");
            if *source != "." {
                assert!(
                    !ignored.iter().any(|pattern| source == pattern || source.starts_with(&format!("{pattern}/"))),
                    "the Dockerfile copies `{source}`, but .dockerignore excludes it"
                );
            }
        }
    }
    assert!(copies >= 2, "expected the workspace and the health check script to be copied");
    // What every build needs must be in the context.
    for needed in ["Cargo.toml", "Cargo.lock", "contract", "service-kit"].into_iter().chain(SERVICES) {
        assert!(!ignored.iter().any(|p| p == needed), ".dockerignore excludes `{needed}`, which the build needs");
    }
    for heavy in ["target", ".local", ".git"] {
        assert!(ignored.iter().any(|p| p == heavy), ".dockerignore must exclude `{heavy}/` from the build context");
    }
}

/// A one-shot HTTP server on a free port answering `GET /health` 200 and anything else 503.
fn spawn_http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            // The whole request head, as a real server reads it before answering.
            let mut request = Vec::new();
            let mut chunk = [0u8; 512];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
            }
            let request = String::from_utf8_lossy(&request);
            let (status, body) = if request.starts_with("GET /health ") {
                ("200 OK", r#"{"error":false,"message":"ok"}"#)
            } else {
                ("503 Service Unavailable", r#"{"error":true,"message":"not ready"}"#)
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
}

#[test]
fn the_container_healthcheck_passes_only_on_a_2xx_answer() {
    let script = project_dir().join("docker/healthcheck.sh");
    let port = spawn_http_server();
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port(); // dropped: closed
    let cases = [
        ("/health", port, true, "a 200 answer is healthy"),
        ("/ready", port, false, "a 503 answer is unhealthy"),
        ("/health", closed, false, "nothing listening is unhealthy"),
    ];
    for (path, port, healthy, message) in cases {
        let output = run(Command::new("bash").arg(&script).arg(path).env("PORT", port.to_string()));
        assert_eq!(
            output.status.success(),
            healthy,
            "{message} (GET {path} on {port}); stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // Without PORT the script probes the default port the image records.
    let port_file = std::env::temp_dir().join(format!("service-port-{}-{port}", std::process::id()));
    std::fs::write(&port_file, format!("{port}\n")).expect("write the port file");
    let output = run(Command::new("bash")
        .arg(&script)
        .arg("/health")
        .env_remove("PORT")
        .env("HEALTHCHECK_PORT_FILE", &port_file));
    let _ = std::fs::remove_file(&port_file);
    assert!(
        output.status.success(),
        "without PORT the port file must be used: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What the image runs to record a service's default port: lib.sh's `service_port`.
const DOCKERFILE_SERVICE_PORT: &str =
    r#"RUN bash -c '. /usr/local/lib/micro-rs/lib.sh && service_port "$1" > /etc/service-port' _ "${SERVICE}""#;

/// `service_port SERVICE` as the image runs it, from project/lib.sh and project/wiring.env.
fn service_port(service: &str) -> Output {
    run(Command::new("bash").arg("-c").arg(r#". "$0/lib.sh" && service_port "$1""#).arg(project_dir()).arg(service))
}

#[test]
fn the_image_records_the_same_default_port_as_the_compose_file_gives_each_service() {
    let dockerfile = std::fs::read_to_string(project_dir().join("Dockerfile")).expect("project/Dockerfile");
    assert!(dockerfile.contains(DOCKERFILE_SERVICE_PORT), "the Dockerfile no longer runs `{DOCKERFILE_SERVICE_PORT}`");
    for copied in [
        "COPY project/lib.sh project/wiring.env /usr/local/lib/micro-rs/\n",
        "COPY project/docker/healthcheck.sh /usr/local/lib/micro-rs/docker/\n",
    ] {
        assert!(
            dockerfile.contains(copied),
            "the image must lay out the health check and what it sources as project/ does: `{copied}`"
        );
    }
    let config = compose_config();
    for (name, service) in built_services(&config) {
        let port = str_of(&config["services"][&name]["environment"]["PORT"]);
        let output = service_port(&service);
        assert!(output.status.success(), "service_port {service}: {}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            port,
            "the image's default port of `{service}` must be the PORT the compose file sets"
        );
    }
    let unknown = service_port("no-such-service");
    assert!(!unknown.status.success(), "an unknown SERVICE must fail the image build");
}

// --- Kubernetes ----------------------------------------------------------------------------

#[test]
fn every_kubernetes_manifest_validates_strictly_against_recent_kubernetes_versions() {
    let files = manifest_files();
    assert!(!files.is_empty(), "no manifests under project/k8s");
    for version in K8S_VERSIONS {
        run_ok(Command::new(tool("kubernetes-validate")).args(["--strict", "--quiet", "-k", version]).args(&files));
    }
}

#[test]
fn the_kustomization_applies_every_manifest_and_nothing_else() {
    let kustomization =
        yaml_file(&k8s_dir().join("kustomization.yaml")).into_iter().next().expect("kustomization document");
    let listed: BTreeSet<String> =
        kustomization["resources"].as_array().expect("resources").iter().map(|r| str_of(r).to_owned()).collect();
    let present: BTreeSet<String> =
        manifest_files().iter().map(|p| p.file_name().expect("file name").to_string_lossy().into_owned()).collect();
    assert_eq!(listed, present, "kustomization.yaml's resources must be exactly the manifests in project/k8s");

    if on_path("kubectl") {
        let rendered = run_ok(Command::new("kubectl").arg("kustomize").arg(k8s_dir()));
        let resources = yaml_documents(&rendered.stdout);
        assert!(
            resources.iter().filter(|r| r["kind"] != "Namespace").all(|r| r["metadata"]["namespace"] == "micro-rs"),
            "kustomize must put every namespaced resource into micro-rs"
        );
    } else {
        eprintln!("kubectl not on PATH: the kustomize rendering itself was not checked");
    }
}

#[test]
fn every_deployment_probes_ready_and_health_sets_resources_and_runs_as_non_root() {
    let resources = k8s_resources();
    let deployments = of_kind(&resources, "Deployment");
    let names: BTreeSet<&str> = deployments.iter().map(|d| str_of(&d["metadata"]["name"])).collect();
    assert_eq!(names, BTreeSet::from(SERVICES), "one Deployment per service");
    let metadata = workspace_metadata();
    let version_of = |crate_name: &str| {
        let packages = metadata["packages"].as_array().expect("packages");
        let package = packages.iter().find(|p| p["name"] == crate_name);
        str_of(&package.unwrap_or_else(|| panic!("no workspace crate `{crate_name}`"))["version"]).to_owned()
    };

    for deployment in deployments {
        let name = str_of(&deployment["metadata"]["name"]);
        let replicas = deployment["spec"]["replicas"].as_u64().unwrap_or(1);
        if SCALED_OUT.contains(&name) {
            assert!(replicas >= 2, "`{name}` must run at least 2 replicas, has {replicas}");
        }
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "`{name}` must run as non-root");
        let containers = pod["containers"].as_array().expect("containers");
        assert_eq!(containers.len(), 1, "`{name}` runs one container");
        let container = &containers[0];
        assert_eq!(container["image"], format!("micro-rs/{name}:{}", version_of(name)), "`{name}`'s image");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready", "`{name}` readiness probe");
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health", "`{name}` liveness probe");
        for bound in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    !container["resources"][bound][resource].is_null(),
                    "`{name}` must set resources.{bound}.{resource}"
                );
            }
        }
        // The probes' named port is declared, and a Service of the same name routes to it.
        let ports = container["ports"].as_array().expect("container ports");
        assert!(ports.iter().any(|p| p["name"] == "http"), "`{name}` must name its HTTP port `http`");
        let service = named(&resources, "Service", name).unwrap_or_else(|| panic!("no Service `{name}`"));
        assert_eq!(
            service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"],
            "Service `{name}` must select the Deployment's pods"
        );
        for port in service["spec"]["ports"].as_array().expect("service ports") {
            assert!(
                ports.iter().any(|p| p["name"] == port["targetPort"]),
                "Service `{name}` targets port {} that the pod does not declare",
                port["targetPort"]
            );
        }
        // Settings come from a ConfigMap and Secrets that the manifests define.
        for source in container["envFrom"].as_array().expect("envFrom") {
            let (kind, reference) = if source.get("configMapRef").is_some() {
                ("ConfigMap", &source["configMapRef"])
            } else {
                ("Secret", &source["secretRef"])
            };
            let referenced = str_of(&reference["name"]);
            assert!(named(&resources, kind, referenced).is_some(), "`{name}` reads {kind} `{referenced}`, not defined");
        }
    }
}

/// The settings a Deployment's pods get from their ConfigMaps and Secrets, and their own `env`
/// (a value taken from elsewhere, `valueFrom`, shows as null).
fn k8s_environment(resources: &[Value], deployment: &Value) -> BTreeMap<String, Value> {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut settings = BTreeMap::new();
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let (kind, reference, data) = if source.get("configMapRef").is_some() {
            ("ConfigMap", &source["configMapRef"], "data")
        } else {
            ("Secret", &source["secretRef"], "stringData")
        };
        if let Some(resource) = named(resources, kind, str_of(&reference["name"])) {
            settings.extend(resource[data].as_object().into_iter().flatten().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    settings.extend(
        container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|variable| (str_of(&variable["name"]).to_owned(), variable["value"].clone())),
    );
    settings
}

/// The keys a Deployment's pods get from their ConfigMaps and Secrets.
fn k8s_settings(resources: &[Value], deployment: &Value) -> BTreeSet<String> {
    k8s_environment(resources, deployment).into_keys().collect()
}

#[test]
fn kubernetes_gives_each_service_the_same_settings_as_the_compose_file() {
    let config = compose_config();
    let resources = k8s_resources();
    for (name, service) in built_services(&config) {
        let compose: BTreeSet<String> =
            config["services"][&name]["environment"].as_object().expect("environment").keys().cloned().collect();
        let deployment = named(&resources, "Deployment", &service).expect("a Deployment per service");
        assert_eq!(k8s_settings(&resources, deployment), compose, "settings of `{service}`: Kubernetes vs compose");
    }
}

#[test]
fn the_ingress_routes_to_the_frontend_and_the_broker() {
    let resources = k8s_resources();
    let ingresses = of_kind(&resources, "Ingress");
    assert_eq!(ingresses.len(), 1, "one Ingress");
    let mut backends = BTreeSet::new();
    for rule in ingresses[0]["spec"]["rules"].as_array().expect("rules") {
        for path in rule["http"]["paths"].as_array().expect("paths") {
            let service = &path["backend"]["service"];
            let name = str_of(&service["name"]);
            let target =
                named(&resources, "Service", name).unwrap_or_else(|| panic!("Ingress routes to unknown `{name}`"));
            assert!(
                target["spec"]["ports"].as_array().expect("ports").iter().any(|p| p["name"] == service["port"]["name"]),
                "Ingress routes to a port `{name}` does not have"
            );
            backends.insert(name.to_owned());
        }
    }
    assert_eq!(backends, BTreeSet::from(["broker".to_owned(), "frontend".to_owned()]));
}

/// The `Host` names a service answers where it is deployed: its `ALLOWED_HOSTS`, or the
/// defaults when it is not set.
fn allowed_hosts(setting: Option<&Value>) -> service_kit::http::AllowedHosts {
    let names: Vec<String> = match setting.and_then(Value::as_str) {
        Some(list) => list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        None => service_kit::settings::DEFAULT_ALLOWED_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
    };
    service_kit::http::AllowedHosts::new(&names)
}

/// The `host[:port]` of a URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or_default()
}

/// Every name a service is reached by is one it answers (`ALLOWED_HOSTS`): the Ingress hosts,
/// the broker as the page's browser reaches it (`BROKER_URL`), and every service URL another
/// service calls (`AUTH_URL`, `MAILER_URL`), in compose and in Kubernetes.
#[test]
fn every_host_a_service_is_reached_by_is_one_it_allows() {
    const CALLED: [(&str, &str); 3] =
        [("BROKER_URL", "broker"), ("AUTH_URL", "authentication"), ("MAILER_URL", "mailer")];
    let config = compose_config();
    let services = built_services(&config);
    let compose_env = |service: &str| {
        let name = services.iter().find(|(_, crate_name)| *crate_name == service).map(|(name, _)| name.clone());
        config["services"][name.expect("a compose service")]["environment"].clone()
    };
    for service in services.values() {
        let environment = compose_env(service);
        for (key, target) in CALLED {
            let Some(url) = environment.get(key).and_then(Value::as_str) else { continue };
            let allowed = allowed_hosts(compose_env(target).get("ALLOWED_HOSTS"));
            assert!(allowed.allows(authority(url)), "compose: {service} calls {target} at {url}, a Host it refuses");
        }
    }

    let resources = k8s_resources();
    let k8s_env = |service: &str| {
        let deployment = named(&resources, "Deployment", service).expect("a Deployment per service");
        k8s_environment(&resources, deployment)
    };
    for service in services.values() {
        for (key, target) in CALLED {
            let Some(url) = k8s_env(service).get(key).and_then(Value::as_str).map(str::to_owned) else { continue };
            let allowed = allowed_hosts(k8s_env(target).get("ALLOWED_HOSTS"));
            assert!(allowed.allows(authority(&url)), "k8s: {service} calls {target} at {url}, a Host it refuses");
        }
    }
    for ingress in of_kind(&resources, "Ingress") {
        for rule in ingress["spec"]["rules"].as_array().expect("rules") {
            let host = str_of(&rule["host"]);
            for path in rule["http"]["paths"].as_array().expect("paths") {
                let backend = str_of(&path["backend"]["service"]["name"]);
                let allowed = allowed_hosts(k8s_env(backend).get("ALLOWED_HOSTS"));
                assert!(allowed.allows(host), "the Ingress sends {host} to {backend}, whose ALLOWED_HOSTS refuses it");
            }
        }
    }
}

// --- metrics: Prometheus's scrape configuration, the pods' annotations, the dashboard --------

fn prometheus_config_file() -> PathBuf {
    project_dir().join("prometheus/prometheus.yml")
}

#[test]
fn compose_s_prometheus_scrapes_every_service_at_the_port_compose_gives_it() {
    let config = compose_config();
    let services = compose_services(&config);
    let prometheus = &services["prometheus"];
    let mounts = prometheus["volumes"].as_array().expect("prometheus mounts its configuration");
    let mounted = mounts.iter().any(|m| {
        let source = m["source"].as_str().or_else(|| m.as_str().and_then(|short| short.split(':').next()));
        source.is_some_and(|source| Path::new(source) == prometheus_config_file())
    });
    assert!(mounted, "compose's prometheus must mount {}: {mounts:?}", prometheus_config_file().display());

    let scrape = &yaml_file(&prometheus_config_file())[0];
    let jobs: BTreeMap<&str, Vec<&str>> = scrape["scrape_configs"]
        .as_array()
        .expect("scrape_configs")
        .iter()
        .map(|job| {
            let targets = job["static_configs"][0]["targets"].as_array().expect("targets");
            (str_of(&job["job_name"]), targets.iter().map(str_of).collect())
        })
        .collect();
    assert_eq!(jobs.keys().copied().collect::<BTreeSet<_>>(), BTreeSet::from(SERVICES), "one job per service");
    for name in SERVICES {
        let port = str_of(&services[name]["environment"]["PORT"]);
        assert_eq!(jobs[name], [format!("{name}:{port}")], "`{name}` is scraped at its compose PORT");
    }
    if on_path("promtool") {
        run_ok(Command::new("promtool").arg("check").arg("config").arg(prometheus_config_file()));
    }
}

#[test]
fn every_deployment_is_annotated_for_prometheus_at_its_http_port() {
    let resources = k8s_resources();
    for deployment in of_kind(&resources, "Deployment") {
        let name = str_of(&deployment["metadata"]["name"]);
        let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "`{name}` pods must be scraped");
        assert_eq!(annotations["prometheus.io/path"], "/metrics", "`{name}` metrics path");
        let ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"].as_array().expect("ports");
        let http = ports.iter().find(|p| p["name"] == "http").expect("an http port");
        assert_eq!(
            annotations["prometheus.io/port"],
            http["containerPort"].to_string(),
            "`{name}` is scraped on its http port"
        );
    }
}

/// The metric names a PromQL expression reads: identifiers followed by `{` or `[`, or an
/// argument of `sum(`/`max(`, without the histogram suffixes.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        let ident = b.is_ascii_alphanumeric() || b == b'_';
        match (start, ident) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                let word = &expr[s..i];
                let before_quote = s > 0 && bytes[s - 1] == b'"';
                if (b == b'{' || b == b'[' || (b == b')' && s > 0 && bytes[s - 1] == b'('))
                    && !before_quote
                    && word.contains('_')
                {
                    let base = ["_bucket", "_count", "_sum"]
                        .iter()
                        .fold(word, |w, suffix| w.strip_suffix(suffix).unwrap_or(w));
                    names.push(base.to_owned());
                }
                start = None;
            }
            _ => {}
        }
    }
    names
}

#[test]
fn the_grafana_dashboard_reads_only_metrics_the_services_define_and_promtool_parses_its_queries() {
    let path = project_dir().join("grafana/dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("the dashboard")).expect("JSON");
    let root = repo_root();
    let sources: String = ["service-kit", "broker", "authentication", "logger", "listener", "mailer"]
        .iter()
        .map(|dir| rust_sources(&root.join(dir).join("src")))
        .collect();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut seen = BTreeSet::new();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = str_of(&target["expr"]);
            for name in metric_names(expr) {
                assert!(
                    sources.contains(&format!("\"{name}\"")),
                    "the dashboard reads `{name}`, which no service defines: {expr}"
                );
                seen.insert(name);
            }
            let concrete = expr.replace("$__rate_interval", "1m").replace("$job", ".*");
            queries += 1;
            let quoted = serde_json::to_string(&concrete).expect("a string");
            rules.push_str(&format!("      - record: dashboard:query{queries}\n        expr: {quoted}\n"));
        }
    }
    for red in ["http_server_request_duration_seconds", "http_server_active_requests"] {
        assert!(seen.contains(red), "the dashboard must show `{red}`");
    }
    if on_path("promtool") {
        let dir = std::env::temp_dir().join(service_kit::testing::unique_name("dashboard-rules"));
        std::fs::create_dir_all(&dir).expect("a scratch dir");
        let file = dir.join("rules.yml");
        std::fs::write(&file, &rules).expect("write the rules");
        let checked = run(Command::new("promtool").arg("check").arg("rules").arg(&file));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            checked.status.success(),
            "promtool cannot parse a dashboard query:\n{}{}\n{rules}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
    }
}
