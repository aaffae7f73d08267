use crate::helpers::spawn_app;

#[tokio::test]
async fn health_answers_200_while_the_process_runs() {
    let app = spawn_app().await;
    let (status, body) = app.get("/health").await.status_and_envelope();
    assert_eq!(status, 200);
    assert!(!body.error);
}

#[tokio::test]
async fn ready_answers_200_when_postgres_answers() {
    let app = spawn_app().await;
    let (status, body) = app.get("/ready").await.status_and_envelope();
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(body.data.unwrap()["postgres"], "ok");
}

#[tokio::test]
async fn an_unknown_route_is_a_404_in_the_envelope() {
    let app = spawn_app().await;
    let (status, body) = app.get("/nope").await.status_and_envelope();
    assert_eq!(status, 404);
    assert!(body.error && body.message.contains("/nope"), "{body:?}");
}

#[tokio::test]
async fn every_answer_has_the_security_headers_and_a_foreign_host_is_refused() {
    let app = spawn_app().await;
    let undeclared =
        service_kit::testing::Undeclared { method: reqwest::Method::GET, path: "/authenticate", allow: "POST" };
    service_kit::testing::assert_edge_answers(&app.address, undeclared).await;
}
