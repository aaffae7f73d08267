use crate::helpers::spawn_app;

#[tokio::test]
async fn every_asset_is_served_from_the_binary_with_its_content_type() {
    let app = spawn_app().await;
    let cases = [
        ("/static/style.css", "text/css; charset=utf-8", ".card"),
        ("/static/app.js", "text/javascript; charset=utf-8", "dataset.brokerUrl"),
        ("/static/favicon.svg", "image/svg+xml", "<svg"),
    ];
    for (path, content_type, excerpt) in cases {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff", "{path}");
        let body = response.text().await.unwrap();
        assert!(body.contains(excerpt), "{path} should contain {excerpt:?}");
    }
}

#[tokio::test]
async fn the_script_sends_the_go_originals_bodies() {
    let app = spawn_app().await;
    let script = app.get("/static/app.js").await.text().await.unwrap();
    for excerpt in [
        r#"email: "admin@example.com", password: "verysecret""#,
        r#"log: { name: "event", data: "Some kind of data" }"#,
        r#"action: "event", log: {"#,
        r#"mail: { from: "me@example.com", to: "you@there.com", subject: "Test email", message: "Hello world!" }"#,
        r#"action: "logs""#,
    ] {
        assert!(script.contains(excerpt), "app.js should contain {excerpt}");
    }
    assert!(!script.contains("innerHTML"), "text from the network must never be parsed as HTML");
}

#[tokio::test]
async fn a_queued_mail_shows_as_queued_not_as_an_error() {
    let app = spawn_app().await;
    let script = app.get("/static/app.js").await.text().await.unwrap();
    assert!(script.contains(r#"body.message.startsWith("Message queued for ")"#), "the broker's queued answer");
    assert!(script.contains(r#"return queued ? "queued" : "ok";"#), "its own badge kind");
    let style = app.get("/static/style.css").await.text().await.unwrap();
    assert!(style.contains(".badge-queued {"), "and its own badge style");
}

#[tokio::test]
async fn the_script_reads_the_hops_and_the_trace_of_each_answer() {
    let app = spawn_app().await;
    let script = app.get("/static/app.js").await.text().await.unwrap();
    for excerpt in [r#"headers.get("server-timing")"#, r#"headers.get("traceresponse")"#, "entry.trace_id"] {
        assert!(script.contains(excerpt), "app.js should contain {excerpt}");
    }
    // The bars' widths go through the CSSOM: the page's policy forbids inline style attributes.
    assert!(!script.contains(r#"setAttribute("style""#), "an inline style the CSP would drop");
}

#[tokio::test]
async fn an_unknown_asset_is_a_404() {
    let app = spawn_app().await;
    let cases = [("/static/nope.js", "no such file"), ("/static/..%2FCargo.toml", "a path outside the assets")];
    for (path, why) in cases {
        assert_eq!(app.get(path).await.status(), 404, "{why}: {path}");
    }
}
