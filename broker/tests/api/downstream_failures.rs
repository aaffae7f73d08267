//! A downstream that is down is a 502 naming it; one that never answers is a 504 naming it and
//! the timeout. Either way the answer comes within the hop's timeout: no request hangs.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{HangingDownstreams, settings_with_downstreams_down, spawn_broker};

/// One valid request per action, and the downstream it goes to as named in messages.
fn valid_requests() -> Vec<(Value, &'static str)> {
    vec![
        (
            json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}}),
            "authentication service",
        ),
        (json!({"action": "log", "log": {"name": "test", "data": "direct"}}), "logger"),
        (json!({"action": "event", "log": {"name": "test", "data": "queued", "level": "WARNING"}}), "RabbitMQ"),
        (json!({"action": "mail", "mail": {"to": "you@example.com", "subject": "s", "message": "m"}}), "mailer"),
        (json!({"action": "logs"}), "logger"),
    ]
}

#[tokio::test]
async fn each_action_answers_502_naming_its_downstream_when_that_is_down() {
    let settings = settings_with_downstreams_down();
    let bound = settings.auth_timeout;
    let app = spawn_broker(settings).await;
    for (request, service) in valid_requests() {
        let started = Instant::now();
        let answer = app.handle(&request).await;
        answer.assert_error(502, &format!("{service} is unreachable"), &request["action"].to_string());
        assert!(started.elapsed() < bound, "{}: took {:?}", request["action"], started.elapsed());
    }
}

#[tokio::test]
async fn each_action_answers_504_naming_its_downstream_when_that_never_answers() {
    let downstreams = HangingDownstreams::start().await;
    let timeout = Duration::from_millis(400);
    let app = spawn_broker(downstreams.settings(timeout)).await;
    for (request, service) in valid_requests() {
        let started = Instant::now();
        let answer = app.handle(&request).await;
        let took = started.elapsed();
        answer.assert_error(504, &format!("{service} did not answer within 400ms"), &request["action"].to_string());
        assert!(took >= timeout, "{}: gave up early, after {took:?}", request["action"]);
        assert!(took < timeout + Duration::from_secs(1), "{}: took {took:?}", request["action"]);
    }
}

#[tokio::test]
async fn ready_is_bounded_and_names_every_downstream_that_hangs() {
    let downstreams = HangingDownstreams::start().await;
    let app = spawn_broker(downstreams.settings(Duration::from_millis(300))).await;
    let started = Instant::now();
    let answer = app.get("/ready").await;
    assert_eq!(answer.status, 200, "the broker serves its degraded answers: {}", answer.body);
    assert!(started.elapsed() < Duration::from_secs(3), "readiness is bounded, took {:?}", started.elapsed());
    for name in ["authentication", "logger", "mailer", "rabbitmq"] {
        assert_ne!(answer.body["data"][name], "ok", "{name}: {}", answer.body);
    }
}
