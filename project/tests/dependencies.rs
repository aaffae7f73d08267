//! What each service links, checked with `cargo tree`: a service that does not talk to RabbitMQ
//! or to the logger's RPC server builds without lapin and tarpc (the mailer consumes queued mail
//! jobs, so it links lapin, but not tarpc). They sit behind service-kit's
//! `amqp` and `logger-rpc` features and contract's `rpc` feature; turning one on by accident
//! (a missing `default-features`, a feature enabled for all) fails here.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The crates only a service that publishes, consumes or calls the logger over RPC needs.
const TRANSPORT_CRATES: [&str; 3] = ["lapin", "deadpool-lapin", "tarpc"];

/// Services that speak neither AMQP nor the logger's RPC.
const PLAIN_HTTP_SERVICES: [&str; 2] = ["frontend", "authentication"];

/// Every package in `package`'s normal (non-dev, non-build) dependency tree, by name.
fn normal_dependencies(package: &str) -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("project/ has a parent");
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["tree", "--locked", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .current_dir(root)
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "cargo tree -p {package} failed: {}", String::from_utf8_lossy(&output.stderr));
    let tree = String::from_utf8(output.stdout).expect("cargo tree prints UTF-8");
    // Lines read `name vX.Y.Z (path)`, with ` (*)` for a package already shown.
    tree.lines().filter_map(|line| line.split_whitespace().next()).map(str::to_owned).collect()
}

#[test]
fn services_that_only_speak_http_link_neither_lapin_nor_tarpc() {
    for service in PLAIN_HTTP_SERVICES {
        let dependencies = normal_dependencies(service);
        assert!(dependencies.contains("service-kit"), "{service} should use service-kit: {dependencies:?}");
        let linked: Vec<&str> = TRANSPORT_CRATES.into_iter().filter(|name| dependencies.contains(*name)).collect();
        assert!(
            linked.is_empty(),
            "{service} links {linked:?}: `cargo tree -p {service} -e normal -i <crate>` says why"
        );
    }
}

#[test]
fn services_that_publish_consume_or_call_the_logger_do_link_them() {
    // The control: the check above would pass vacuously if `cargo tree` printed something else.
    let expected: [(&str, &[&str]); 4] = [
        ("broker", &["lapin", "tarpc"]),
        ("listener", &["lapin", "tarpc"]),
        ("logger", &["tarpc"]),
        ("mailer", &["lapin"]),
    ];
    for (service, crates) in expected {
        let dependencies = normal_dependencies(service);
        for name in crates {
            assert!(dependencies.contains(*name), "{service} should link {name}: {dependencies:?}");
        }
    }
}

#[test]
fn the_mailer_consumes_mail_jobs_over_amqp_but_never_calls_the_logger_over_rpc() {
    let dependencies = normal_dependencies("mailer");
    assert!(!dependencies.contains("tarpc"), "mailer links tarpc: `cargo tree -p mailer -e normal -i tarpc` says why");
}
