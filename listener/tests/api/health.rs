use logger::testing::TestLogger;
use service_kit::testing::{Answer, TestMongo, closed_port};

use crate::helpers::{TestBroker, spawn_app, spawn_app_with};

#[tokio::test]
async fn health_answers_200_while_the_process_runs() {
    let broker = TestBroker::new().await;
    let app = spawn_app(&broker, &format!("127.0.0.1:{}", closed_port())).await;
    let response = app.get("/health").await;
    assert_eq!(response.status, 200);
    app.stop().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn ready_answers_200_once_consuming_with_the_logger_reachable() {
    let logger = TestLogger::spawn(TestMongo::new()).await;
    let broker = TestBroker::new().await;
    let app = spawn_app(&broker, &logger.rpc_addr).await;
    app.wait_until_ready().await;
    let body = app.ready().await.body;
    assert_eq!(body["data"]["rabbitmq"], "ok", "{body}");
    assert_eq!(body["data"]["logger"], "ok", "{body}");
    app.stop().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn ready_answers_503_and_names_what_is_down() {
    let broker = TestBroker::new().await;
    let app = spawn_app_with(&broker, &format!("127.0.0.1:{}", closed_port()), |settings| {
        settings.rabbit_url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", closed_port()).into();
    })
    .await;
    let Answer { status, body, .. } = app.ready().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], true, "{body}");
    let rabbitmq = body["data"]["rabbitmq"].as_str().unwrap();
    let logger = body["data"]["logger"].as_str().unwrap();
    assert_ne!(rabbitmq, "ok", "{body}");
    assert!(logger.contains("unreachable"), "{body}");
    // It keeps running (and retrying) instead of exiting.
    assert_eq!(app.get("/health").await.status, 200);
    app.stop().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn a_body_short_of_its_content_length_is_answered_at_once_and_the_connection_closed() {
    let broker = TestBroker::new().await;
    let bound = std::time::Duration::from_secs(2);
    let app = spawn_app_with(&broker, &format!("127.0.0.1:{}", closed_port()), |settings| {
        settings.http.body_timeout = bound;
    })
    .await;
    service_kit::testing::assert_unread_short_body_answered_at_once(&app.address, "/health", bound).await;
    app.stop().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn every_answer_has_the_security_headers_and_a_foreign_host_is_refused() {
    let broker = TestBroker::new().await;
    let app = spawn_app(&broker, &format!("127.0.0.1:{}", closed_port())).await;
    // The listener has no route of its own: `/ready` is the one to send a wrong method to.
    let undeclared = service_kit::testing::Undeclared { method: reqwest::Method::POST, path: "/ready", allow: "GET" };
    service_kit::testing::assert_edge_answers(&app.address, undeclared).await;
    app.stop().await;
    broker.cleanup().await;
}
