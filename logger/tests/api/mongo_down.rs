use std::time::{Duration, Instant};

use contract::log::LogError;
use serde_json::json;
use service_kit::logger_client::RpcError;

use service_kit::testing::{closed_port, eventually};

use crate::helpers::{OwnMongo, entry, spawn_app_with};

/// "Fast": MongoDB's server selection timeout (2 s) plus slack, far below the client's 5 s.
const FAST: Duration = Duration::from_millis(3500);

fn is_unavailable(error: &RpcError) -> bool {
    matches!(error, RpcError::Logger(LogError::Unavailable(_)))
}

#[tokio::test]
async fn writes_fail_fast_while_mongodb_is_down_and_succeed_again_once_it_is_back() {
    let mut mongo = OwnMongo::start().await;
    let app = spawn_app_with(|s| s.mongo.url = mongo.url().into()).await;
    app.rpc.write_log(entry("before", "")).await.expect("MongoDB is up");

    mongo.kill();

    let started = Instant::now();
    let error = app.rpc.write_log(entry("while down", "")).await.unwrap_err();
    assert!(is_unavailable(&error), "{error:?}");
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
    let started = Instant::now();
    let response = app.post_log(&json!({"name": "while down", "data": ""})).await;
    assert_eq!(response.status, 503);
    let body = &response.body;
    assert!(body["message"].as_str().unwrap().contains("MongoDB is unreachable"), "{body}");
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
    assert_eq!(app.get("/ready").await.status, 503);

    mongo.restart().await;

    // The same logger, not restarted, writes again.
    eventually("a write to succeed once MongoDB is back", Duration::from_secs(20), || async {
        app.rpc.write_log(entry("after", "")).await.ok()
    })
    .await;
    let names: Vec<String> = app.rpc.recent(10, None, None).await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["after", "before"], "nothing was stored while MongoDB was down");
    assert_eq!(app.get("/ready").await.status, 200);
}

#[tokio::test]
async fn the_logger_starts_without_mongodb_and_says_it_is_unavailable() {
    let closed = format!("mongodb://127.0.0.1:{}", closed_port());
    let started = Instant::now();
    let app = spawn_app_with(|s| s.mongo.url = closed.into()).await;
    assert!(started.elapsed() < FAST, "build took {:?}", started.elapsed());

    let started = Instant::now();
    let error = app.rpc.write_log(entry("n", "")).await.unwrap_err();
    assert!(is_unavailable(&error), "{error:?}");
    assert!(error.to_string().contains("MongoDB is unreachable"), "{error}");
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());

    let ready = app.get("/ready").await;
    assert_eq!(ready.status, 503);
    let body = &ready.body;
    assert_ne!(body["data"]["mongodb"], "ok", "{body}");
}
