//! The wiring table, `project/wiring.env`, against every file that repeats a port or a name of
//! it: the Rust defaults (`service_kit::wiring`, `contract::event`), the shell's reading of the
//! table (project/lib.sh), the settings the local launcher gives each process with and without
//! `STACK_PORT_OFFSET` (`stack.sh env`), the compose file and the Kubernetes manifests. The
//! Dockerfile takes its default ports from the table itself (`service_port`, checked in
//! `the_image_records_the_same_default_port_as_the_compose_file_gives_each_service`).
//!
//! One rule per setting ([`expected`]) says which entry of the table a setting repeats, so a
//! port or a name that disagrees anywhere names the file, the service and the setting.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;
use service_kit::wiring;

use super::{
    SERVICES, built_services, compose_config, k8s_environment, k8s_resources, named, of_kind, project_dir, run_ok,
    str_of,
};

/// The table as KEY -> VALUE, parsed strictly: every other line is a comment or empty.
fn table() -> BTreeMap<String, String> {
    let path = project_dir().join("wiring.env");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut table = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("wiring.env:{}: not KEY=VALUE", number + 1));
        assert!(
            !key.is_empty() && key.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
            "wiring.env:{}: `{key}` is not an upper-case shell name",
            number + 1
        );
        assert!(!value.is_empty() && !value.contains(char::is_whitespace), "wiring.env:{}: `{value}`", number + 1);
        assert!(table.insert(key.to_owned(), value.to_owned()).is_none(), "wiring.env repeats {key}");
    }
    table
}

/// The stack's own ports, moved by `STACK_PORT_OFFSET`; the others are the shared servers'.
const STACK_PORTS: [&str; 9] = [
    "BROKER_PORT",
    "FRONTEND_PORT",
    "AUTHENTICATION_PORT",
    "LOGGER_PORT",
    "MAILER_PORT",
    "LISTENER_PORT",
    "LOGGER_RPC_PORT",
    "SMTP_PORT",
    "MAILCATCHER_PORT",
];

/// The wiring of one deployment of the system: the table, seen from a stack at `offset`
/// (compose and Kubernetes are at offset 0).
struct Wiring {
    table: BTreeMap<String, String>,
    offset: u32,
}

impl Wiring {
    fn port(&self, key: &str) -> u32 {
        let port: u32 = self.table[key].parse().unwrap_or_else(|_| panic!("{key} is not a port"));
        if STACK_PORTS.contains(&key) { port + self.offset } else { port }
    }

    fn name(&self, key: &str) -> String {
        let name = &self.table[key];
        if self.offset == 0 { name.clone() } else { format!("{name}_{}", self.offset) }
    }
}

/// What one setting must hold, by the table.
enum Expected {
    /// The value is this port.
    Port(u32),
    /// Every `host:port` of the URL (or URLs) has this port; only an `https://` one may omit it.
    UrlPort(u32),
    /// A PostgreSQL URL on this port, to this database.
    Dsn(u32, String),
    /// The value is this name.
    Name(String),
}

/// The rule for setting `key` of `service`, or None for a setting that is no wiring.
fn expected(wiring: &Wiring, service: &str, key: &str) -> Option<Expected> {
    Some(match key {
        "PORT" => Expected::Port(wiring.port(&format!("{}_PORT", service.to_ascii_uppercase()))),
        "RPC_PORT" => Expected::Port(wiring.port("LOGGER_RPC_PORT")),
        "MAIL_PORT" => Expected::Port(wiring.port("SMTP_PORT")),
        "AUTH_URL" => Expected::UrlPort(wiring.port("AUTHENTICATION_PORT")),
        "MAILER_URL" => Expected::UrlPort(wiring.port("MAILER_PORT")),
        "LOGGER_RPC_ADDR" => Expected::UrlPort(wiring.port("LOGGER_RPC_PORT")),
        "BROKER_URL" => Expected::UrlPort(wiring.port("BROKER_PORT")),
        "CORS_ALLOWED_ORIGINS" => Expected::UrlPort(wiring.port("FRONTEND_PORT")),
        "MAILCATCHER_URL" => Expected::UrlPort(wiring.port("MAILCATCHER_PORT")),
        "RABBIT_URL" => Expected::UrlPort(wiring.port("RABBIT_PORT")),
        "MONGO_URL" => Expected::UrlPort(wiring.port("MONGO_PORT")),
        "DSN" => Expected::Dsn(wiring.port("POSTGRES_PORT"), wiring.name("POSTGRES_DB")),
        "MONGO_DB" | "EXCHANGE" | "QUEUE_NAME" | "MAIL_EXCHANGE" | "MAIL_QUEUE" => Expected::Name(wiring.name(key)),
        _ => return None,
    })
}

/// The ports of every `host:port` in `value` (a URL, a list of URLs, an address): digits after
/// a colon that end the authority, so that a password of digits is not one.
fn ports_in(value: &str) -> Vec<u32> {
    value
        .split(':')
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let ends_authority = matches!(rest[digits.len()..].chars().next(), None | Some('/' | ',' | '?'));
            if digits.is_empty() || !ends_authority { None } else { digits.parse().ok() }
        })
        .collect()
}

/// Checks one setting; the error names where it is and what it should be.
fn check(wiring: &Wiring, place: &str, service: &str, key: &str, value: &str) -> Result<(), String> {
    let Some(rule) = expected(wiring, service, key) else { return Ok(()) };
    let wrong = |should: String| Err(format!("{place}: {service} {key}={value}, but the table says {should}"));
    match rule {
        Expected::Port(port) => {
            if value != port.to_string() {
                return wrong(format!("{port}"));
            }
        }
        Expected::UrlPort(port) => {
            let ports = ports_in(value);
            let bare = ports.is_empty() && value.split(',').all(|url| url.starts_with("https://"));
            if !(bare || (!ports.is_empty() && ports.iter().all(|p| *p == port))) {
                return wrong(format!("port {port}"));
            }
        }
        Expected::Dsn(port, database) => {
            let path = value.rsplit_once('/').map(|(_, db)| db.split('?').next().unwrap_or_default());
            if ports_in(value) != [port] || path != Some(database.as_str()) {
                return wrong(format!("port {port}, database {database}"));
            }
        }
        Expected::Name(name) => {
            if value != name {
                return wrong(name);
            }
        }
    }
    Ok(())
}

/// Checks every setting of every service; one failure lists all disagreements.
fn check_all<'a>(wiring: &Wiring, place: &str, settings: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) {
    let errors: Vec<String> = settings
        .into_iter()
        .filter_map(|(service, key, value)| check(wiring, place, service, key, value).err())
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn the_table_holds_the_rust_defaults_and_nothing_else() {
    let table = table();
    let ports = [
        ("BROKER_PORT", wiring::BROKER_PORT),
        ("FRONTEND_PORT", wiring::FRONTEND_PORT),
        ("AUTHENTICATION_PORT", wiring::AUTHENTICATION_PORT),
        ("LOGGER_PORT", wiring::LOGGER_PORT),
        ("MAILER_PORT", wiring::MAILER_PORT),
        ("LISTENER_PORT", wiring::LISTENER_PORT),
        ("LOGGER_RPC_PORT", wiring::LOGGER_RPC_PORT),
        ("POSTGRES_PORT", wiring::POSTGRES_PORT),
        ("MONGO_PORT", wiring::MONGO_PORT),
        ("RABBIT_PORT", wiring::RABBIT_PORT),
        ("SMTP_PORT", wiring::SMTP_PORT),
        ("MAILCATCHER_PORT", wiring::MAILCATCHER_PORT),
    ];
    let names = [
        ("POSTGRES_DB", wiring::POSTGRES_DB),
        ("MONGO_DB", wiring::MONGO_DB),
        ("EXCHANGE", contract::event::EXCHANGE),
        ("QUEUE_NAME", contract::event::DEFAULT_QUEUE),
        ("MAIL_EXCHANGE", contract::mail::EXCHANGE),
        ("MAIL_QUEUE", contract::mail::DEFAULT_QUEUE),
    ];
    let mut rust: BTreeMap<String, String> = ports.iter().map(|(k, v)| ((*k).to_owned(), v.to_string())).collect();
    rust.extend(names.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    // The local server's login is in the Rust default DSN.
    let (user, password) = (&table["POSTGRES_USER"], &table["POSTGRES_PASSWORD"]);
    assert_eq!(
        wiring::DSN,
        format!(
            "postgres://{user}:{password}@{}:{}/{}",
            wiring::LOCAL_HOST,
            wiring::POSTGRES_PORT,
            wiring::POSTGRES_DB
        ),
        "service_kit::wiring::DSN vs wiring.env"
    );
    rust.insert("POSTGRES_USER".into(), user.clone());
    rust.insert("POSTGRES_PASSWORD".into(), password.clone());
    assert_eq!(table, rust, "wiring.env vs service_kit::wiring, contract::event and contract::mail");
}

#[test]
fn the_shell_reads_the_table_as_the_tests_do() {
    let output = run_ok(
        Command::new("bash")
            .arg("-c")
            .arg(r#". "$0/lib.sh" && for key in "${!WIRING[@]}"; do printf '%s=%s\n' "$key" "${WIRING[$key]}"; done"#)
            .arg(project_dir()),
    );
    let shell: BTreeMap<String, String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).expect("KEY=VALUE"))
        .collect();
    assert_eq!(shell, table(), "lib.sh's WIRING vs wiring.env");
}

/// `stack.sh env` at an offset: service -> settings, with the environment's overrides removed.
fn stack_env(offset: u32) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut command = Command::new("bash");
    command.arg(project_dir().join("stack.sh")).arg("env").env("STACK_PORT_OFFSET", offset.to_string());
    for overriding in [
        "DSN",
        "MONGO_DB",
        "EXCHANGE",
        "QUEUE_NAME",
        "MAIL_EXCHANGE",
        "MAIL_QUEUE",
        "MAIL_PORT",
        "MAILCATCHER_URL",
        "STACK_HOST",
    ] {
        command.env_remove(overriding);
    }
    let output = run_ok(&mut command);
    let mut services: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let (service, setting) =
            line.split_once(": ").unwrap_or_else(|| panic!("`{line}` is not `service: KEY=VALUE`"));
        let (key, value) = setting.split_once('=').unwrap_or_else(|| panic!("`{setting}` is not KEY=VALUE"));
        services.entry(service.to_owned()).or_default().insert(key.to_owned(), value.to_owned());
    }
    services
}

fn check_stack(offset: u32) -> BTreeMap<String, BTreeMap<String, String>> {
    let services = stack_env(offset);
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(SERVICES), "stack.sh env at offset {offset} lists every service");
    let wiring = Wiring { table: table(), offset };
    let settings =
        services.iter().flat_map(|(s, env)| env.iter().map(move |(k, v)| (s.as_str(), k.as_str(), v.as_str())));
    check_all(&wiring, &format!("stack.sh (STACK_PORT_OFFSET={offset})"), settings);
    services
}

#[test]
fn the_launcher_wires_the_services_as_the_table_says() {
    let services = check_stack(0);
    // Every name a service keeps in the shared servers is passed, not left to a default.
    for (service, keys) in [
        ("authentication", &["DSN"][..]),
        ("logger", &["MONGO_DB"][..]),
        ("listener", &["EXCHANGE", "QUEUE_NAME"][..]),
        ("broker", &["EXCHANGE", "QUEUE_NAME", "MAIL_EXCHANGE", "MAIL_QUEUE"][..]),
        ("mailer", &["MAIL_PORT", "MAIL_EXCHANGE", "MAIL_QUEUE"][..]),
    ] {
        for key in keys {
            assert!(services[service].contains_key(*key), "stack.sh gives {service} no {key}");
        }
    }
}

#[test]
fn a_second_stack_shares_no_port_queue_exchange_or_database_with_the_first() {
    let first = check_stack(0);
    let second = check_stack(20000);
    let wiring = Wiring { table: table(), offset: 0 };
    for (service, settings) in &second {
        for (key, value) in settings.iter().filter(|(key, _)| expected(&wiring, service, key).is_some()) {
            assert_ne!(&first[service][key], value, "{service} {key} is the same in both stacks");
        }
    }
    // The shared servers stay where they are (the URLs of stack ports were checked above).
    assert!(second["authentication"]["DSN"].contains(&format!(":{}/", wiring::POSTGRES_PORT)));
}

#[test]
fn the_compose_file_wires_the_services_as_the_table_says() {
    let config = compose_config();
    let wiring = Wiring { table: table(), offset: 0 };
    let built = built_services(&config);
    let environments: Vec<(String, BTreeMap<String, String>)> = built
        .iter()
        .map(|(name, service)| {
            let environment = config["services"][name]["environment"].as_object().expect("environment map");
            (service.clone(), environment.iter().map(|(k, v)| (k.clone(), text(v))).collect())
        })
        .collect();
    check_all(
        &wiring,
        "docker-compose.yml",
        environments.iter().flat_map(|(s, env)| env.iter().map(move |(k, v)| (s.as_str(), k.as_str(), v.as_str()))),
    );
    // The database container creates what the authentication service's DSN names, with its login.
    let postgres = &config["services"]["postgres"]["environment"];
    for key in ["POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"] {
        assert_eq!(text(&postgres[key]), wiring.table[key], "docker-compose.yml: postgres {key}");
    }
    let dsn = &config["services"]["authentication"]["environment"]["DSN"];
    let login = format!("//{}:{}@", wiring.table["POSTGRES_USER"], wiring.table["POSTGRES_PASSWORD"]);
    assert!(
        str_of(dsn).contains(&login),
        "docker-compose.yml: authentication DSN logs in as the postgres container's user"
    );
}

#[test]
fn kubernetes_wires_the_services_as_the_table_says() {
    let resources = k8s_resources();
    let wiring = Wiring { table: table(), offset: 0 };
    let mut errors = Vec::new();
    for deployment in of_kind(&resources, "Deployment") {
        let service = str_of(&deployment["metadata"]["name"]);
        // MAIL_PORT is the cluster's SMTP relay (587), not the local catcher of the table.
        for (key, value) in k8s_environment(&resources, deployment).iter().filter(|(k, _)| *k != "MAIL_PORT") {
            errors.extend(check(&wiring, "k8s", service, key, &text(value)).err());
        }
        // The pods listen, and the Services route, on the table's ports.
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let service_ports = &named(&resources, "Service", service).expect("a Service per Deployment")["spec"]["ports"];
        for (port_name, key) in
            [("http", format!("{}_PORT", service.to_ascii_uppercase())), ("rpc", "LOGGER_RPC_PORT".into())]
        {
            let declared = container["ports"].as_array().into_iter().flatten().find(|p| p["name"] == port_name);
            let Some(declared) = declared else { continue };
            let routed = service_ports.as_array().into_iter().flatten().find(|p| p["targetPort"] == port_name);
            for (what, port) in
                [("containerPort", &declared["containerPort"]), ("Service port", &routed.expect("routed")["port"])]
            {
                if port.as_u64() != Some(u64::from(wiring.port(&key))) {
                    errors.push(format!(
                        "k8s: {service} {port_name} {what} {port}, but the table says {key}={}",
                        wiring.port(&key)
                    ));
                }
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn no_script_or_dockerfile_writes_a_port_of_the_table_again() {
    let ports: BTreeSet<String> =
        table().into_iter().filter(|(key, _)| key.ends_with("_PORT")).map(|(_, port)| port).collect();
    let files = ["infra.sh", "stack.sh", "lib.sh", "deploy-check.sh", "test.sh", "docker/healthcheck.sh", "Dockerfile"];
    let mut found = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(project_dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        for (number, line) in source.lines().enumerate().filter(|(_, l)| !l.trim_start().starts_with('#')) {
            let words = line.split(|c: char| !c.is_ascii_digit()).filter(|w| ports.contains(*w));
            found.extend(words.map(|port| format!("{file}:{}: {port}: {}", number + 1, line.trim())));
        }
    }
    assert!(found.is_empty(), "ports of wiring.env written again (use WIRING[...]):\n{}", found.join("\n"));
}

#[test]
fn ports_are_read_from_urls_addresses_and_lists() {
    let cases: [(&str, &[u32], &str); 6] = [
        ("http://127.0.0.1:8083", &[8083], "a URL"),
        ("logger:5001", &[5001], "an address"),
        ("http://localhost:8081,http://127.0.0.1:8081", &[8081, 8081], "a list of origins"),
        ("postgres://postgres:5432@db:5432/users", &[5432], "a password of digits is no port"),
        ("mongodb://u:p@a:27017,b:27017/?replicaSet=r", &[27017, 27017], "a replica set"),
        ("https://broker.micro.example.com", &[], "no port"),
    ];
    for (value, ports, why) in cases {
        assert_eq!(ports_in(value), ports, "{why}: {value}");
    }
}
