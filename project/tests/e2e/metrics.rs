//! `GET /metrics` on all six services of the running stack: the actions through the broker move
//! each service's own series, every output passes `promtool check metrics`, and a real
//! Prometheus scrapes all six with `up == 1`. Other tests run against the same stack at the
//! same time, so the counts are "at least", read as deltas.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use service_kit::testing::{
    ChildServer, Scrape, ScratchDir, assert_promtool_passes, eventually, free_port, scrape, unique_name,
};
use service_kit::wiring;

use crate::helpers::{EFFECT_TIMEOUT, stack};

/// The `prometheus` to run (default: on `PATH`, from Debian's package; `project/infra.sh tools`).
const TEST_PROMETHEUS: &str = "TEST_PROMETHEUS";

/// The six services by job name and port.
const SERVICES: [(&str, u16); 6] = [
    ("broker", wiring::BROKER_PORT),
    ("frontend", wiring::FRONTEND_PORT),
    ("authentication", wiring::AUTHENTICATION_PORT),
    ("logger", wiring::LOGGER_PORT),
    ("mailer", wiring::MAILER_PORT),
    ("listener", wiring::LISTENER_PORT),
];

/// A port of the stack, moved by the stack's `STACK_PORT_OFFSET` as `stack.sh` moves it.
fn stack_port(port: u16) -> u16 {
    let offset = service_kit::testing::env_or("STACK_PORT_OFFSET", "0");
    port + offset.parse::<u16>().unwrap_or_else(|_| panic!("STACK_PORT_OFFSET={offset} is not a port offset"))
}

fn url(port: u16) -> String {
    format!("http://{}:{port}", wiring::LOCAL_HOST)
}

async fn scrape_all() -> Vec<Scrape> {
    let mut scrapes = Vec::new();
    for (_, port) in SERVICES {
        scrapes.push(scrape(&url(stack_port(port))).await);
    }
    scrapes
}

/// Asserts that `name{labels}` grew by at least `least` between two scrapes.
fn assert_grew(service: &str, before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)], least: f64) {
    let grown = after.value(name, labels) - before.value(name, labels);
    assert!(grown >= least, "{service}: {name}{labels:?} grew by {grown}, expected at least {least}:\n{}", after.text);
}

#[tokio::test]
async fn every_action_moves_the_metrics_of_the_services_it_crosses_and_promtool_accepts_them() {
    let stack = stack().await;
    let before = scrape_all().await;
    let name = unique_name("e2e-metrics");
    let log = stack.handle(&json!({"action": "log", "log": {"name": name, "data": "rpc"}})).await;
    assert_eq!(log.status, 202, "{}", log.body);
    let event = stack.handle(&json!({"action": "event", "log": {"name": name, "data": "amqp"}})).await;
    assert_eq!(event.status, 202, "{}", event.body);
    let to = format!("{name}@example.com");
    let mail =
        stack.handle_signed_in(&json!({"action": "mail", "mail": {"to": to, "subject": "s", "message": "m"}})).await;
    assert_eq!(mail.status, 202, "{}", mail.body);
    // The event reaches the listener asynchronously.
    let listener = eventually("the listener to count a stored delivery", EFFECT_TIMEOUT, || async {
        let now = scrape(&url(stack_port(wiring::LISTENER_PORT))).await;
        let stored = now.value("listener_deliveries_stored_total", &[])
            - before[5].value("listener_deliveries_stored_total", &[]);
        (stored >= 1.0).then_some(now)
    })
    .await;
    let mut after = scrape_all().await;
    after[5] = listener;

    let (broker, auth, logger, mailer) = (&after[0], &after[2], &after[3], &after[4]);
    let hops = "broker_downstream_request_duration_seconds_count";
    for (downstream, action) in
        [("logger", "log"), ("rabbitmq", "event"), ("authentication", "auth"), ("mailer", "mail")]
    {
        let labels = [("downstream", downstream), ("action", action), ("outcome", "ok")];
        assert_grew("broker", &before[0], broker, hops, &labels, 1.0);
    }
    assert_grew(
        "broker",
        &before[0],
        broker,
        "broker_events_published_total",
        &[("action", "event"), ("outcome", "ok")],
        1.0,
    );
    let handled = [("http_route", "/handle"), ("http_response_status_code", "202")];
    assert_grew("broker", &before[0], broker, "http_server_request_duration_seconds_count", &handled, 4.0);
    assert_grew("authentication", &before[2], auth, "auth_logins_total", &[("outcome", "accepted")], 1.0);
    assert_grew("authentication", &before[2], auth, "auth_bcrypt_verify_duration_seconds_count", &[], 1.0);
    assert_grew("logger", &before[3], logger, "logger_entries_written_total", &[], 2.0);
    assert_grew("logger", &before[3], logger, "logger_insert_batch_size_count", &[], 1.0);
    let inserts = [("operation", "insert"), ("outcome", "ok")];
    assert_grew("logger", &before[3], logger, "logger_store_operation_duration_seconds_count", &inserts, 1.0);
    assert_grew("mailer", &before[4], mailer, "mailer_mails_total", &[("outcome", "sent")], 1.0);
    assert_grew("listener", &before[5], &after[5], "listener_deliveries_received_total", &[], 1.0);
    assert_eq!(after[5].value("listener_consumer_connected", &[]), 1.0, "the listener is consuming");

    for ((service, _), scrape) in SERVICES.iter().zip(&after) {
        assert!(
            scrape.has("http_server_request_duration_seconds_count"),
            "{service}: no HTTP metrics:\n{}",
            scrape.text
        );
        assert_promtool_passes(&scrape.text);
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_all_six_services_with_up_1() {
    stack().await;
    let dir = ScratchDir::new("e2e-prometheus");
    let targets: Vec<String> = SERVICES
        .iter()
        .map(|(job, port)| {
            let port = stack_port(*port);
            format!("  - job_name: {job}\n    static_configs:\n      - targets: ['{}:{port}']\n", wiring::LOCAL_HOST)
        })
        .collect();
    let config = format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{}", targets.concat());
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).expect("write the Prometheus config");
    // Prometheus does not report the port it got for :0: a free one is picked here.
    let port = free_port();
    let binary = service_kit::testing::env_or(TEST_PROMETHEUS, "prometheus");
    let mut command = Command::new(&binary);
    command
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address={}:{port}", wiring::LOCAL_HOST));
    let prometheus = ChildServer::start("prometheus", command, &[port], Duration::from_secs(30)).await;

    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("an HTTP client");
    let query = format!("{}/api/v1/query", url(port));
    let up = eventually("Prometheus to scrape all six with up == 1", Duration::from_secs(30), || async {
        let answer: Value = http.get(&query).query(&[("query", "up")]).send().await.ok()?.json().await.ok()?;
        let results = answer["data"]["result"].as_array()?.clone();
        let up: Vec<(String, String)> = results
            .iter()
            .map(|r| {
                (r["metric"]["job"].as_str().unwrap_or("").to_owned(), r["value"][1].as_str().unwrap_or("").to_owned())
            })
            .collect();
        (up.len() == SERVICES.len() && up.iter().all(|(_, value)| value == "1")).then_some(up)
    })
    .await;
    let mut jobs: Vec<&str> = up.iter().map(|(job, _)| job.as_str()).collect();
    jobs.sort_unstable();
    assert_eq!(
        jobs,
        ["authentication", "broker", "frontend", "listener", "logger", "mailer"],
        "{}",
        prometheus.output()
    );
}
