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

#[tokio::test]
async fn every_answer_has_the_security_headers_and_a_foreign_host_is_refused() {
    let app = spawn_app().await;
    let undeclared =
        service_kit::testing::Undeclared { method: reqwest::Method::POST, path: "/index.html", allow: "GET" };
    service_kit::testing::assert_edge_answers(&app.address, undeclared).await;
}

/// The page keeps its own, stricter policy: the API's `frame-ancestors 'none'` does not replace it.
#[tokio::test]
async fn the_page_keeps_its_strict_content_security_policy() {
    let app = spawn_app().await;
    let page = app.get("/").await;
    assert_eq!(page.status().as_u16(), 200);
    let header = |name: &str| page.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let policy = header("content-security-policy").unwrap_or_default();
    for directive in ["default-src 'self'", "script-src 'self'", "base-uri 'none'", "frame-ancestors 'none'"] {
        assert!(policy.contains(directive), "{directive} in {policy:?}");
    }
    assert_eq!(page.headers().get_all("content-security-policy").iter().count(), 1, "one policy");
    assert_eq!(header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
}
