use crate::helpers::{spawn_app, spawn_app_with_broker};

#[tokio::test]
async fn the_page_is_served_as_html_with_every_button_and_pane() {
    let app = spawn_app().await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
    let html = response.text().await.unwrap();
    for (id, label) in [
        ("btn-broker", "Test Broker"),
        ("btn-auth", "Test Auth"),
        ("btn-log", "Test Log"),
        ("btn-event", "Test Event"),
        ("btn-mail", "Test Mail"),
    ] {
        assert!(html.contains(&format!(r#"id="{id}">{label}</button>"#)), "button {label} is missing");
    }
    for id in ["output", "sent", "received", "status", "timing", "trace-id", "logs", "entry-trace", "mailcatcher-link"]
    {
        assert!(html.contains(&format!(r#"id="{id}""#)), "element #{id} is missing");
    }
}

#[tokio::test]
async fn the_page_loads_nothing_from_another_site() {
    let app = spawn_app().await;
    let html = app.get("/").await.text().await.unwrap();
    for reference in html.split(['"', '\'']).filter(|s| s.starts_with("http") || s.starts_with("//")) {
        assert!(
            reference.starts_with("http://localhost:8080") || reference.starts_with("http://localhost:8025"),
            "the page refers to {reference}"
        );
    }
    for asset in ["/static/style.css", "/static/app.js", "/static/favicon.svg"] {
        assert!(html.contains(&format!(r#""{asset}""#)), "{asset} is not linked");
    }
}

#[tokio::test]
async fn the_broker_url_is_injected_into_the_page_and_its_policy() {
    let app = spawn_app_with_broker("https://broker.example.com:9443/api/").await;
    let response = app.get("/").await;
    let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"data-broker-url="https://broker.example.com:9443/api""#), "{html}");
    assert!(html.contains(r#"href="http://localhost:8025""#), "the mail catcher link is missing");
    assert!(policy.contains("connect-src 'self' https://broker.example.com:9443;"), "{policy}");
    assert!(policy.contains("script-src 'self';"), "{policy}");
}

#[tokio::test]
async fn a_broker_url_with_markup_is_escaped() {
    let app = spawn_app_with_broker(r#"http://localhost:8080/"><script>alert('x')</script>"#).await;
    let html = app.get("/").await.text().await.unwrap();
    assert!(!html.contains("<script>alert"), "the URL broke out of its attribute");
    assert!(html.contains(
        r#"data-broker-url="http://localhost:8080/&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;""#
    ));
}

#[tokio::test]
async fn index_html_is_the_same_page() {
    let app = spawn_app().await;
    let root = app.get("/").await.text().await.unwrap();
    let index = app.get("/index.html").await.text().await.unwrap();
    assert_eq!(root, index);
}
