use crate::helpers::spawn_app;

#[tokio::test]
async fn health_and_ready_answer_200_without_a_broker() {
    let app = spawn_app().await;
    for path in ["/health", "/ready"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], false, "{path}: {body}");
    }
}

#[tokio::test]
async fn an_unknown_path_is_a_404_in_the_envelope() {
    let app = spawn_app().await;
    let response = app.get("/nope").await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], true);
}
