use std::time::Duration;

use serde_json::json;
use service_kit::testing::{self, MailCatcher, eventually};

use crate::helpers::{mail_to, spawn_app, spawn_app_with, test_settings};

#[tokio::test]
async fn health_answers_200() {
    let app = spawn_app().await;
    let (status, body) = app.get("/health").await.status_and_envelope();
    assert_eq!((status, body.error), (200, false));
}

#[tokio::test]
async fn ready_answers_200_once_the_smtp_server_answers_and_the_job_consumer_is_consuming() {
    let app = spawn_app().await;
    let body = eventually("the mailer is ready and consuming", Duration::from_secs(15), || async {
        let (status, body) = app.get("/ready").await.status_and_envelope();
        (status == 200 && body.data.as_ref().is_some_and(|d| d["rabbitmq"] == "ok")).then_some(body)
    })
    .await;
    let checks = body.data.unwrap();
    assert_eq!((&checks["smtp"], &checks["rabbitmq"]), (&json!("ok"), &json!("ok")), "{checks}");
}

#[tokio::test]
async fn without_rabbitmq_ready_names_it_stays_ready_and_direct_sends_still_work() {
    let mut settings = test_settings();
    settings.queue.rabbit_url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", testing::closed_port()).into();
    let app = spawn_app_with(settings).await;
    let (status, body) = app.get("/ready").await.status_and_envelope();
    assert_eq!(status, 200, "only the queued mail needs RabbitMQ: {body:?}");
    let rabbitmq = body.data.unwrap()["rabbitmq"].as_str().unwrap().to_owned();
    assert_ne!(rabbitmq, "ok");
    let to = MailCatcher::unique_address();
    assert_eq!(app.send(&mail_to(&to)).await.status, 202, "the HTTP side does not need RabbitMQ");
}

#[tokio::test]
async fn an_unknown_route_is_a_404_in_the_envelope() {
    let app = spawn_app().await;
    let (status, body) = app.get("/nope").await.status_and_envelope();
    assert_eq!((status, body.error), (404, true));
}

#[tokio::test]
async fn every_answer_has_the_security_headers_and_a_foreign_host_is_refused() {
    let app = spawn_app().await;
    let undeclared = service_kit::testing::Undeclared { method: reqwest::Method::PUT, path: "/send", allow: "POST" };
    service_kit::testing::assert_edge_answers(&app.address, undeclared).await;
}
