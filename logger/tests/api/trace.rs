//! Entries carry the trace of the request that caused them, and list by it.

use contract::log::LogEntry;
use serde_json::json;
use service_kit::logger_client::RpcError;

use crate::helpers::{entry, spawn_app};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const OTHER: &str = "0af7651916cd43dd8448eb211c80319c";

fn traced(name: &str, trace_id: &str) -> LogEntry {
    entry(name, "").in_trace(Some(trace_id.into()))
}

fn names(entries: &[contract::log::StoredEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.name.as_str()).collect()
}

#[tokio::test]
async fn an_entry_keeps_its_trace_id_and_lists_filter_by_it_over_rpc_and_http() {
    let app = spawn_app().await;
    let id = app.rpc.write_log(traced("a", TRACE)).await.unwrap();
    app.rpc.write_log(entry("untraced", "")).await.unwrap();
    app.rpc.write_many(vec![traced("b", OTHER), traced("c", TRACE)]).await.unwrap();

    let stored = app.rpc.get(id.clone()).await.unwrap();
    assert_eq!(stored.trace_id.as_deref(), Some(TRACE));
    let docs = app.stored().await;
    let untraced = docs.iter().find(|d| d.get_str("name") == Ok("untraced")).unwrap();
    assert!(!untraced.contains_key("trace_id"), "no field without a trace: {untraced}");

    let by_rpc = app.rpc.recent(10, None, Some(TRACE.into())).await.unwrap();
    assert_eq!(names(&by_rpc), ["c", "a"], "only that trace's, newest first");
    assert!(by_rpc.iter().all(|e| e.trace_id.as_deref() == Some(TRACE)));
    let first_page = app.rpc.recent(1, None, Some(TRACE.into())).await.unwrap();
    let next = app.rpc.recent(1, Some(first_page[0].id.clone()), Some(TRACE.into())).await.unwrap();
    assert_eq!((names(&first_page), names(&next)), (vec!["c"], vec!["a"]), "pages within the trace");
    let all = app.rpc.recent(10, None, None).await.unwrap();
    assert_eq!(all.len(), 4, "no filter: every entry");

    let answer = app.get(&format!("/logs?trace_id={TRACE}")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let listed = answer.envelope().data.unwrap();
    let listed: Vec<&str> = listed.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(listed, ["c", "a"]);
    let one = app.get(&format!("/logs/{id}")).await.envelope().data.unwrap();
    assert_eq!(one["trace_id"], TRACE);
    let untraced = app.get("/logs?limit=10").await.envelope().data.unwrap();
    let untraced = untraced.as_array().unwrap().iter().find(|e| e["name"] == "untraced").unwrap().clone();
    assert!(untraced.get("trace_id").is_none(), "no key without a trace: {untraced}");
}

#[tokio::test]
async fn a_bad_trace_id_is_refused_naming_the_problem() {
    let app = spawn_app().await;
    let hex = "`trace_id`: must be a trace id of 32 lowercase hex digits";
    let cases = [
        ("nope", hex, "not hex"),
        ("4BF92F3577B34DA6A3CE929D0E0E4736", hex, "uppercase"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", hex, "a whole traceparent"),
        ("00000000000000000000000000000000", "`trace_id`: must not be all zeros", "the invalid id"),
    ];
    for (bad, expected, why) in cases {
        app.get(&format!("/logs?trace_id={bad}")).await.assert_error(400, expected, why);
        match app.rpc.recent(5, None, Some(bad.into())).await {
            Err(RpcError::Logger(contract::log::LogError::Invalid(message))) => {
                assert!(message.contains(expected), "{why}: {message}")
            }
            other => panic!("{why}: expected an invalid request, got {other:?}"),
        }
        let refused = app.rpc.write_log(traced("n", bad)).await;
        assert!(matches!(refused, Err(RpcError::Logger(contract::log::LogError::Invalid(_)))), "{why}: {refused:?}");
    }
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn post_log_records_the_trace_of_its_request() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(format!("{}/log", app.logger.http_url))
        .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
        .json(&json!({"name": "n", "data": "d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let docs = app.stored().await;
    assert_eq!(docs[0].get_str("trace_id").unwrap(), TRACE);
}
