//! `log` (RPC to the logger), `event` (RabbitMQ, then the listener) and `logs` (the newest
//! entries), each checked against what MongoDB holds.

use contract::log::{Level, StoredEntry};
use mongodb::bson::{Document, doc};
use serde_json::json;
use service_kit::testing::unique_name;

use crate::helpers::stack;

#[tokio::test]
async fn log_stores_the_entry_in_mongodb() {
    let stack = stack().await;
    let name = unique_name("e2e-log");
    let answer = stack
        .handle(&json!({"action": "log", "log": {"name": name, "data": "straight to the logger", "level": "WARNING"}}))
        .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body, json!({"error": false, "message": "logged"}));

    // The broker answers after the logger confirmed the write: the entry is there at once.
    let stored = stack.entries(doc! { "name": &name }).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let entry = &stored[0];
    assert_eq!(entry.get_str("data").expect("data"), "straight to the logger");
    assert_eq!(entry.get_str("level").expect("a level"), "WARNING");
    assert!(entry.get_datetime("created_at").is_ok(), "a created_at date: {entry}");
    assert!(entry.get("event_id").is_none_or(|id| id.as_null().is_some()), "not an event: {entry}");
}

#[tokio::test]
async fn event_is_stored_in_mongodb_through_the_listener_with_its_level() {
    let stack = stack().await;
    // (level sent, level stored)
    let cases = [(None, "INFO"), (Some("WARNING"), "WARNING"), (Some("ERROR"), "ERROR")];
    let mut sent = Vec::new();
    for (level, stored_level) in cases {
        let name = unique_name("e2e-event");
        let mut log = json!({"name": name, "data": format!("through RabbitMQ at {stored_level}")});
        if let Some(level) = level {
            log["level"] = json!(level);
        }
        let answer = stack.handle(&json!({"action": "event", "log": log})).await;
        assert_eq!(answer.status, 202, "level {level:?}: {}", answer.body);
        assert_eq!(answer.body, json!({"error": false, "message": "logged via RabbitMQ"}), "level {level:?}");
        sent.push((name, stored_level));
    }
    for (name, level) in sent {
        let entry = stack.wait_for_entry(&format!("the {level} event {name} in MongoDB"), doc! { "name": &name }).await;
        assert_eq!(entry.get_str("level").expect("a level"), level, "{entry}");
        assert_eq!(entry.get_str("data").expect("data"), format!("through RabbitMQ at {level}"));
        assert!(entry.get_str("event_id").is_ok(), "stored by the listener with its event id: {entry}");
    }
}

#[tokio::test]
async fn logs_returns_the_new_entries_newest_first() {
    let stack = stack().await;
    let names: Vec<String> = (0..3).map(|i| unique_name(&format!("e2e-logs{i}"))).collect();
    for (i, name) in names.iter().enumerate() {
        let answer = stack.handle(&json!({"action": "log", "log": {"name": name, "data": format!("entry {i}")}})).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
    }

    // Other tests (or a person on the test page) may log in between: ask for enough entries.
    let answer = stack.handle_signed_in(&json!({"action": "logs", "logs": {"limit": 50}})).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["error"], false);
    let returned: Vec<StoredEntry> = serde_json::from_value(answer.body["data"].clone())
        .unwrap_or_else(|e| panic!("entries ({e}): {}", answer.body));
    let position = |name: &str| {
        returned.iter().position(|e| e.name == name).unwrap_or_else(|| panic!("{name} not among {returned:?}"))
    };
    let positions: Vec<usize> = names.iter().map(|n| position(n)).collect();
    assert!(positions[2] < positions[1] && positions[1] < positions[0], "newest first: {positions:?}");
    assert!(
        returned.windows(2).all(|w| w[0].created_at >= w[1].created_at),
        "ordered by created_at, newest first: {returned:?}"
    );

    // What the broker returned is what MongoDB holds.
    for (i, name) in names.iter().enumerate() {
        let shown = &returned[positions[i]];
        let stored: Vec<Document> = stack.entries(doc! { "name": name }).await;
        assert_eq!(stored.len(), 1, "{stored:?}");
        assert_eq!(shown.id, stored[0].get_object_id("_id").expect("an ObjectId").to_hex(), "{shown:?}");
        assert_eq!((shown.data.as_str(), shown.level), (format!("entry {i}").as_str(), Level::Info), "{shown:?}");
        assert_eq!(shown.event_id, None, "{shown:?}");
    }
}

/// A trace id of this test's own: the stack's store is shared with other runs.
fn unique_trace_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{:032x}", (nanos ^ (u128::from(std::process::id()) << 96)) | 1)
}

#[tokio::test]
async fn an_event_with_a_traceparent_is_stored_in_that_trace_and_listed_by_it() {
    let stack = stack().await;
    let trace_id = unique_trace_id();
    let name = unique_name("e2e-traced");
    let request = stack.http.post(format!("{}/handle", stack.broker_url));
    let request = request.header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"));
    let body = json!({"action": "event", "log": {"name": name, "data": "one trace through every hop"}});
    let answer = crate::helpers::Answer::read(request.json(&body).send().await.expect("POST /handle")).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let traceresponse = answer.header("traceresponse").expect("the broker names the trace");
    assert_eq!(traceresponse.split('-').nth(1), Some(trace_id.as_str()), "{traceresponse}");

    let entry = stack.wait_for_entry("the traced event in MongoDB", doc! { "name": &name }).await;
    assert_eq!(entry.get_str("trace_id").expect("a trace id"), trace_id, "through RabbitMQ and the listener: {entry}");

    let answer = stack.handle_signed_in(&json!({"action": "logs", "logs": {"trace_id": trace_id}})).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let listed: Vec<StoredEntry> = serde_json::from_value(answer.body["data"].clone()).unwrap();
    assert_eq!(listed.len(), 1, "only that trace's entry: {listed:?}");
    assert_eq!((listed[0].name.as_str(), listed[0].trace_id.as_deref()), (name.as_str(), Some(trace_id.as_str())));
}
