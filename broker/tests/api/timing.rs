//! `Server-Timing` on the answers of `POST /` and `POST /handle`: each hop the request made, in
//! the order the hops ended, then `total`; for a failing hop too. And CORS lets the test page
//! (another origin) read it.

use serde_json::{Value, json};

use crate::helpers::{Answer, settings_with_downstreams_down, spawn_broker};
use crate::stack::spawn_stack;

/// The hop names of an answer's `Server-Timing`, after checking that each has a duration in ms
/// with one decimal and none is longer than `total`, which comes last.
fn hops(answer: &Answer, what: &str) -> Vec<String> {
    let header = answer
        .headers
        .get("server-timing")
        .unwrap_or_else(|| panic!("{what}: no Server-Timing in the answer ({})", answer.status))
        .to_str()
        .expect("ASCII");
    let entries: Vec<(String, f64)> = header
        .split(", ")
        .map(|entry| {
            let (name, duration) =
                entry.split_once(";dur=").unwrap_or_else(|| panic!("{what}: {entry:?} has no duration: {header}"));
            let (_, decimals) = duration.split_once('.').unwrap_or_else(|| panic!("{what}: {header}"));
            assert_eq!(decimals.len(), 1, "{what}: one decimal: {header}");
            (name.to_owned(), duration.parse().unwrap_or_else(|e| panic!("{what}: {duration:?}: {e}")))
        })
        .collect();
    let (last, total) = entries.last().expect("at least the total");
    assert_eq!(last, "total", "{what}: the total comes last: {header}");
    for (name, duration) in &entries {
        assert!(duration <= total, "{what}: {name} is longer than the total: {header}");
    }
    entries.into_iter().map(|(name, _)| name).collect()
}

fn auth(password: &str) -> Value {
    json!({"action": "auth", "auth": {"email": "admin@example.com", "password": password}})
}

#[tokio::test]
async fn each_action_names_the_hops_it_made() {
    let stack = spawn_stack().await;
    let broker = &stack.broker;
    let cases = [
        (auth("verysecret"), 202, vec!["auth", "event", "total"], "auth, then its login event"),
        (auth("not-the-password"), 401, vec!["auth", "event", "total"], "a refused login is recorded too"),
        (json!({"action": "log", "log": {"name": "timing", "data": "direct"}}), 202, vec!["log", "total"], "log"),
        (json!({"action": "event", "log": {"name": "timing", "data": "queued"}}), 202, vec!["event", "total"], "event"),
        (
            json!({"action": "mail", "mail": {"to": "you@example.com", "subject": "s", "message": "m"}}),
            202,
            vec!["mail", "total"],
            "mail",
        ),
        (json!({"action": "logs"}), 200, vec!["logs", "total"], "logs"),
        (json!({"action": "nope"}), 400, vec!["total"], "refused before any hop"),
    ];
    for (request, status, expected, what) in cases {
        let answer = broker.handle(&request).await;
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
        assert_eq!(hops(&answer, what), expected, "{what}");
    }
    let answer = Answer::read(broker.http.post(&broker.address).send().await.expect("POST /")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(hops(&answer, "POST /"), ["total"], "Test Broker makes no hop");
    stack.cleanup().await;
}

#[tokio::test]
async fn a_hop_that_fails_is_named_in_the_error_answer() {
    // Every downstream at a closed port, no breaker: each hop fails at once.
    let app = spawn_broker(settings_with_downstreams_down()).await;
    let cases = [
        (auth("verysecret"), vec!["auth", "total"], "auth: no verdict, no login event"),
        (
            json!({"action": "log", "log": {"name": "timing", "data": "down"}}),
            vec!["log", "event", "total"],
            "log, then its fallback through RabbitMQ",
        ),
        (json!({"action": "event", "log": {"name": "timing", "data": "down"}}), vec!["event", "total"], "event"),
        (
            json!({"action": "mail", "mail": {"to": "you@example.com", "subject": "s", "message": "m"}}),
            vec!["mail", "mail-job", "total"],
            "mail, then its queued job",
        ),
        (json!({"action": "logs"}), vec!["logs", "total"], "logs"),
    ];
    for (request, expected, what) in cases {
        let answer = app.handle(&request).await;
        assert_eq!(answer.status, 502, "{what}: {}", answer.body);
        assert_eq!(hops(&answer, what), expected, "{what}");
    }
}

#[tokio::test]
async fn a_page_of_an_allowed_origin_may_read_the_timings_and_the_trace() {
    let app = spawn_broker(settings_with_downstreams_down()).await;
    let origin = app.settings.cors_allowed_origins[0].clone();
    let response = app
        .http
        .post(format!("{}/handle", app.address))
        .header("Origin", &origin)
        .json(&json!({"action": "event", "log": {"name": "timing", "data": "cors"}}))
        .send()
        .await
        .expect("POST /handle");
    let header = |name: &str| {
        response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_lowercase).unwrap_or_default()
    };
    let exposed: Vec<String> =
        header("access-control-expose-headers").split(',').map(|h| h.trim().to_owned()).collect();
    for name in ["server-timing", "traceresponse"] {
        assert!(exposed.iter().any(|h| h == name), "{name} is not exposed: {exposed:?}");
    }
    let allowed: Vec<String> = header("timing-allow-origin").split(',').map(|o| o.trim().to_owned()).collect();
    assert!(allowed.contains(&origin.to_lowercase()), "Timing-Allow-Origin {allowed:?} lacks {origin}");
    assert!(!allowed.iter().any(|o| o == "*"), "only the allowed origins, not everyone: {allowed:?}");
}

#[tokio::test]
async fn a_login_whose_event_cannot_be_published_names_the_failed_publish() {
    let stack = crate::stack::spawn_stack_with(|settings| {
        settings.rabbit_url =
            format!("amqp://guest:guest@127.0.0.1:{}/%2f", service_kit::testing::closed_port()).into();
    })
    .await;
    let answer = stack.broker.handle(&auth("verysecret")).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    // The publish fails at once (connection refused): the answer names the failed hop.
    assert_eq!(hops(&answer, "RabbitMQ down"), ["auth", "event", "total"]);
    stack.cleanup().await;
}
