//! One trace per request, into every stored entry: the caller's `traceparent` reaches the entry
//! a `log` stores, the entry the listener stores from an `event`, and the login event of an
//! `auth`; the `logs` action lists one trace's entries.

use mongodb::bson::doc;
use serde_json::{Value, json};
use service_kit::testing::{Answer, unique_name};

use crate::stack::{TestStack, named, spawn_stack};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const OTHER: &str = "0af7651916cd43dd8448eb211c80319c";

/// `POST /handle` as a caller in the trace `trace_id`.
async fn handle_in_trace(stack: &TestStack, trace_id: &str, body: &Value) -> Answer {
    let request = stack.broker.http.post(format!("{}/handle", stack.broker.address));
    let request = request.header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"));
    Answer::read(request.json(body).send().await.expect("POST /handle")).await
}

/// The trace id an answer's `traceresponse` names.
fn answered_trace(answer: &Answer) -> String {
    let traceresponse = answer.header("traceresponse").expect("a traceresponse");
    traceresponse.split('-').nth(1).unwrap().to_owned()
}

#[tokio::test]
async fn an_event_and_a_log_store_entries_in_the_callers_trace() {
    let stack = spawn_stack().await;
    let (event, log) = (unique_name("event"), unique_name("log"));
    let answer = handle_in_trace(&stack, TRACE, &json!({"action": "event", "log": {"name": event, "data": "d"}})).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let answer = handle_in_trace(&stack, OTHER, &json!({"action": "log", "log": {"name": log, "data": "d"}})).await;
    assert_eq!(answer.status, 202, "{}", answer.body);

    let entry = stack.wait_for_entry("the event, through the listener", named(&event)).await;
    assert_eq!(entry.get_str("trace_id").unwrap(), TRACE, "{entry}");
    let entry = stack.wait_for_entry("the direct entry", named(&log)).await;
    assert_eq!(entry.get_str("trace_id").unwrap(), OTHER, "{entry}");

    // Without a traceparent, the entry is in the trace the broker started and named.
    let untraced = unique_name("untraced");
    let answer = stack.broker.handle(&json!({"action": "event", "log": {"name": untraced, "data": "d"}})).await;
    let entry = stack.wait_for_entry("the untraced event", named(&untraced)).await;
    assert_eq!(entry.get_str("trace_id").unwrap(), answered_trace(&answer), "{entry}");
    stack.cleanup().await;
}

#[tokio::test]
async fn an_auths_login_event_carries_the_actions_trace_id() {
    let stack = spawn_stack().await;
    let credentials = json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}});
    let answer = handle_in_trace(&stack, TRACE, &credentials).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answered_trace(&answer), TRACE);
    let entry = stack
        .wait_for_entry("the login event", doc! { "name": "authentication", "data": "admin@example.com logged in" })
        .await;
    assert_eq!(entry.get_str("trace_id").unwrap(), TRACE, "{entry}");

    let wrong = json!({"action": "auth", "auth": {"email": "admin@example.com", "password": unique_name("wrong")}});
    let answer = stack.broker.handle(&wrong).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    let entry = stack
        .wait_for_entry(
            "the failed login",
            doc! { "name": "authentication", "data": "failed login for admin@example.com" },
        )
        .await;
    assert_eq!(entry.get_str("trace_id").unwrap(), answered_trace(&answer), "the broker's own trace: {entry}");
    stack.cleanup().await;
}

#[tokio::test]
async fn logs_with_a_trace_id_lists_only_that_traces_entries() {
    let stack = spawn_stack().await;
    let names = [unique_name("first"), unique_name("second"), unique_name("other")];
    for (name, trace_id) in names.iter().zip([TRACE, TRACE, OTHER]) {
        let answer =
            handle_in_trace(&stack, trace_id, &json!({"action": "log", "log": {"name": name, "data": "d"}})).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
    }
    let listed = |answer: Answer| -> Vec<(String, String)> {
        assert_eq!(answer.status, 200, "{}", answer.body);
        let entries = answer.body["data"].as_array().unwrap().clone();
        entries
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_owned(), e["trace_id"].as_str().unwrap_or_default().to_owned()))
            .collect()
    };

    let answer = stack.broker.handle(&json!({"action": "logs", "logs": {"trace_id": TRACE}})).await;
    let expected = [(names[1].clone(), TRACE.to_owned()), (names[0].clone(), TRACE.to_owned())];
    assert_eq!(listed(answer), expected, "newest first, only that trace");
    let answer = stack.broker.handle(&json!({"action": "logs", "logs": {"trace_id": OTHER, "limit": 5}})).await;
    assert_eq!(listed(answer), [(names[2].clone(), OTHER.to_owned())]);
    let answer = stack.broker.handle(&json!({"action": "logs", "logs": {"limit": 100}})).await;
    assert!(listed(answer).len() >= 3, "without the filter: every entry");
    stack.cleanup().await;
}
