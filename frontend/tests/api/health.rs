use service_kit::testing::Answer;

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_and_ready_answer_200_without_a_broker() {
    let app = spawn_app().await;
    for path in ["/health", "/ready"] {
        let Answer { status, body, .. } = Answer::read(app.get(path).await).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body["error"], false, "{path}: {body}");
    }
}

#[tokio::test]
async fn an_unknown_path_is_a_404_in_the_envelope() {
    let app = spawn_app().await;
    let Answer { status, body, .. } = Answer::read(app.get("/nope").await).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], true);
}

#[tokio::test]
async fn a_body_short_of_its_content_length_is_answered_at_once_and_the_connection_closed() {
    let app = spawn_app().await;
    service_kit::testing::assert_unread_short_body_answered_at_once(
        &app.address,
        "/",
        service_kit::settings::DEFAULT_BODY_TIMEOUT,
    )
    .await;
}
