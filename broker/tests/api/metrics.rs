//! `GET /metrics`: what a request through the broker moves, read as deltas by label (every
//! service of a test process shares one recorder), and `promtool check metrics` on the text.

use std::time::Duration;

use broker::breaker::BreakerSettings;
use serde_json::json;
use service_kit::testing::{self, Scrape, assert_promtool_passes, scrape};

use crate::helpers::{TestApp, settings_with_downstreams_down, spawn_broker};

const REQUESTS: &str = "http_server_request_duration_seconds_count";
const HOPS: &str = "broker_downstream_request_duration_seconds_count";
const PUBLISHED: &str = "broker_events_published_total";
const CONFIRMS: &str = "broker_event_publish_confirm_duration_seconds_count";
const BREAKER: &str = "broker_circuit_breaker_state";

/// How much the series `name{labels}` grew from `before` to `after`.
fn delta(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.value(name, labels) - before.value(name, labels)
}

async fn post_root(app: &TestApp) {
    let answer = app.http.post(format!("{}/", app.address)).send().await.expect("POST /");
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn a_request_through_the_broker_moves_its_counters_by_route_template_and_outcome() {
    let mut settings = settings_with_downstreams_down();
    settings.rabbit_url = testing::rabbit_url().into();
    let app = spawn_broker(settings).await;
    let before = scrape(&app.address).await;

    post_root(&app).await;
    let event = app.handle(&json!({"action": "event", "log": {"name": "metrics", "data": "counted"}})).await;
    assert_eq!(event.status, 202, "{}", event.body);
    let mail =
        app.handle(&json!({"action": "mail", "mail": {"to": "a@example.com", "subject": "s", "message": "m"}})).await;
    assert_eq!((mail.status, mail.message()), (202, "Message queued for a@example.com"), "{}", mail.body);
    let logs = app.handle(&json!({"action": "logs"})).await;
    assert_eq!(logs.status, 502, "{}", logs.body);
    let unknown = app.get("/logs/6650f1a2b3c4d5e6f7a8b9c0").await;
    assert_eq!(unknown.status, 404);

    let after = scrape(&app.address).await;
    let root = [("http_request_method", "POST"), ("http_route", "/"), ("http_response_status_code", "200")];
    assert_eq!(delta(&before, &after, REQUESTS, &root), 1.0, "POST / counted once:\n{}", after.text);
    let handle = [("http_route", "/handle"), ("http_response_status_code", "202")];
    assert_eq!(delta(&before, &after, REQUESTS, &handle), 2.0, "the event's and the queued mail's 202");
    let bad_gateway = [("http_route", "/handle"), ("http_response_status_code", "502")];
    assert_eq!(delta(&before, &after, REQUESTS, &bad_gateway), 1.0, "the logs' 502");
    // A path no route has is one series, whatever the path: never the raw path as a label.
    let unmatched = [("http_route", "unmatched"), ("http_response_status_code", "404")];
    assert_eq!(delta(&before, &after, REQUESTS, &unmatched), 1.0, "the unknown path");
    assert!(!after.text.contains("6650f1a2b3c4d5e6f7a8b9c0"), "a raw path is in a label:\n{}", after.text);

    let published = [("downstream", "rabbitmq"), ("action", "event"), ("outcome", "ok")];
    assert_eq!(delta(&before, &after, HOPS, &published), 1.0, "the publish hop");
    assert_eq!(delta(&before, &after, PUBLISHED, &[("action", "event"), ("outcome", "ok")]), 1.0);
    assert_eq!(delta(&before, &after, CONFIRMS, &[("outcome", "ok")]), 2.0, "the confirms' latency: event, mail job");
    let unreachable = [("downstream", "mailer"), ("action", "mail"), ("outcome", "unreachable")];
    assert_eq!(delta(&before, &after, HOPS, &unreachable), 1.0, "the mailer hop, down");
    let queued = [("downstream", "rabbitmq"), ("action", "mail"), ("outcome", "ok")];
    assert_eq!(delta(&before, &after, HOPS, &queued), 1.0, "the mail job's publish hop");
    assert_eq!(delta(&before, &after, PUBLISHED, &[("action", "mail"), ("outcome", "ok")]), 1.0);
    let logger_down = [("downstream", "logger"), ("action", "logs"), ("outcome", "unreachable")];
    assert_eq!(delta(&before, &after, HOPS, &logger_down), 1.0, "the logs hop, down");
    assert_eq!(after.value("http_server_active_requests", &[]), 1.0, "only the scrape itself is in flight");

    assert_promtool_passes(&after.text);
}

#[tokio::test]
async fn an_open_circuit_shows_in_the_breaker_gauge_and_its_refusals_as_circuit_open() {
    let mut settings = settings_with_downstreams_down();
    settings.breaker = BreakerSettings { failures: 2, open_for: Duration::from_secs(30), ..BreakerSettings::default() };
    let app = spawn_broker(settings).await;
    let mail = json!({"action": "mail", "mail": {"to": "a@example.com", "subject": "s", "message": "m"}});
    let before = scrape(&app.address).await;
    assert_eq!(before.value(BREAKER, &[("downstream", "mailer")]), 0.0, "closed at start");

    for _ in 0..2 {
        assert_eq!(app.handle(&mail).await.status, 502);
    }
    assert_eq!(app.handle(&mail).await.status, 503, "the circuit is open");

    let after = scrape(&app.address).await;
    assert_eq!(after.value(BREAKER, &[("downstream", "mailer")]), 2.0, "open:\n{}", after.text);
    assert_eq!(after.value(BREAKER, &[("downstream", "authentication")]), 0.0);
    let refused = [("downstream", "mailer"), ("action", "mail"), ("outcome", "circuit_open")];
    assert_eq!(delta(&before, &after, HOPS, &refused), 1.0);
    let failed = [("downstream", "mailer"), ("action", "mail"), ("outcome", "unreachable")];
    assert_eq!(delta(&before, &after, HOPS, &failed), 2.0);
    assert_promtool_passes(&after.text);
}
