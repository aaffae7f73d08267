use contract::validate::{MAX_LOG_DATA_CHARS, MAX_LOG_NAME_CHARS};
use serde_json::json;

use crate::helpers::{entry, spawn_app, spawn_app_with};

#[tokio::test]
async fn post_log_returns_202_logged_and_stores_the_entry() {
    let app = spawn_app().await;

    let response = app.post_log(&json!({"name": "event", "data": "Some kind of data"})).await;

    assert_eq!(response.status, 202);
    let body = response.envelope();
    assert!(!body.error);
    assert_eq!(body.message, "logged");
    let id = body.data.unwrap()["id"].as_str().expect("the new entry's id").to_owned();
    let docs = app.stored().await;
    assert_eq!(docs.len(), 1);
    let doc = &docs[0];
    assert_eq!(doc.get_object_id("_id").unwrap().to_hex(), id);
    assert_eq!(doc.get_str("name").unwrap(), "event");
    assert_eq!(doc.get_str("data").unwrap(), "Some kind of data");
    assert_eq!(doc.get_str("level").unwrap(), "INFO", "the level defaults to INFO");
    assert_eq!(doc.get_datetime("created_at").unwrap(), doc.get_datetime("updated_at").unwrap());
    assert!(!doc.contains_key("event_id"));
}

#[tokio::test]
async fn post_log_keeps_the_given_level() {
    let app = spawn_app().await;
    let response = app.post_log(&json!({"name": "n", "data": "d", "level": "warning"})).await;
    assert_eq!(response.status, 202);
    assert_eq!(app.stored().await[0].get_str("level").unwrap(), "WARNING");
}

#[tokio::test]
async fn get_logs_lists_newest_first_and_pages_with_before() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.rpc.write_log(entry(&format!("e{i}"), "")).await.unwrap();
    }
    let page = |query: String| {
        let app = &app;
        async move {
            let response = app.get(&format!("/logs{query}")).await;
            assert_eq!(response.status, 200, "GET /logs{query}");
            let entries = response.envelope().data.unwrap();
            entries
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (e["id"].as_str().unwrap().to_owned(), e["name"].as_str().unwrap().to_owned()))
                .collect::<Vec<_>>()
        }
    };

    let all = page(String::new()).await;
    let first = page("?limit=2".into()).await;
    let second = page(format!("?limit=2&before={}", first[1].0)).await;
    let third = page(format!("?limit=2&before={}", second[1].0)).await;

    let names = |p: &[(String, String)]| p.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&all), ["e4", "e3", "e2", "e1", "e0"]);
    assert_eq!(names(&first), ["e4", "e3"]);
    assert_eq!(names(&second), ["e2", "e1"]);
    assert_eq!(names(&third), ["e0"]);
}

#[tokio::test]
async fn get_log_by_id_returns_the_entry() {
    let app = spawn_app().await;
    let id = app.rpc.write_log(entry("one", "data")).await.unwrap();

    let response = app.get(&format!("/logs/{id}")).await;

    assert_eq!(response.status, 200);
    let data = response.envelope().data.unwrap();
    assert_eq!(data["id"], id.as_str());
    assert_eq!(data["name"], "one");
    assert_eq!(data["data"], "data");
    assert_eq!(data["level"], "INFO");
    assert_eq!(data["created_at"], data["updated_at"]);
}

#[tokio::test]
async fn get_log_is_404_when_absent_and_400_when_the_id_is_malformed() {
    let app = spawn_app().await;
    let cases = [
        ("/logs/65f1c0ffee0000000000abcd", 404, "log entry not found", "a well-formed id nobody has"),
        ("/logs/not-an-id", 400, "24 hex digits", "not hex"),
        ("/logs/65f1c0ffee0000000000abc", 400, "24 hex digits", "23 digits"),
    ];
    for (path, status, message, why) in cases {
        let response = app.get(path).await;
        assert_eq!(response.status, status, "{why}");
        let body = response.envelope();
        assert!(body.error, "{why}");
        assert!(body.message.contains(message), "{why}: {:?} should contain {message:?}", body.message);
    }
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_message_that_names_the_problem_and_nothing_is_stored() {
    let app = spawn_app().await;
    let json = "application/json";
    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        ("not JSON", b"{not json".to_vec(), json, 400, "not valid JSON"),
        ("invalid UTF-8", b"{\"name\":\"\xff\xfe\",\"data\":\"d\"}".to_vec(), json, 400, "not valid JSON"),
        ("empty body", Vec::new(), json, 400, "not valid JSON"),
        ("missing data", br#"{"name":"n"}"#.to_vec(), json, 400, "missing field `data`"),
        ("name not a string", br#"{"name":1,"data":"d"}"#.to_vec(), json, 400, "invalid type"),
        ("unknown level", br#"{"name":"n","data":"d","level":"LOUD"}"#.to_vec(), json, 400, "unknown variant"),
        ("empty name", br#"{"name":"","data":"d"}"#.to_vec(), json, 400, "`name`: must not be empty"),
        (
            "name over the limit",
            serde_json::to_vec(&json!({"name": "n".repeat(MAX_LOG_NAME_CHARS + 1), "data": "d"})).unwrap(),
            json,
            400,
            "`name`: must be at most",
        ),
        (
            "data over the limit",
            serde_json::to_vec(&json!({"name": "n", "data": "d".repeat(MAX_LOG_DATA_CHARS + 1)})).unwrap(),
            json,
            400,
            "`data`: must be at most",
        ),
        ("not JSON content", br#"{"name":"n","data":"d"}"#.to_vec(), "text/plain", 415, "application/json"),
        (
            "body over 1 MiB",
            serde_json::to_vec(&json!({"name": "n", "data": "d".repeat(2 * 1024 * 1024)})).unwrap(),
            json,
            413,
            "larger than",
        ),
    ];
    for (why, body, content_type, status, message) in cases {
        let response = app.post_log_raw(body, content_type).await;
        assert_eq!(response.status, status, "{why}");
        let body = response.envelope();
        assert!(body.error, "{why}");
        assert!(body.message.contains(message), "{why}: {:?} should contain {message:?}", body.message);
    }
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn bad_listing_queries_are_400() {
    let app = spawn_app().await;
    let cases = [
        ("?limit=abc", "invalid query string", "limit not a number"),
        ("?limit=-1", "invalid query string", "negative limit"),
        ("?limit=0", "`limit`: must be at least 1", "zero limit"),
        ("?before=nope", "24 hex digits", "malformed before"),
    ];
    for (query, message, why) in cases {
        let response = app.get(&format!("/logs{query}")).await;
        assert_eq!(response.status, 400, "{why}");
        let body = &response.body;
        assert_eq!(body["error"], true, "{why}");
        let text = body["message"].as_str().unwrap();
        assert!(text.contains(message), "{why}: {text:?} should contain {message:?}");
    }
}

#[tokio::test]
async fn a_page_before_an_unknown_entry_is_404_as_the_entry_is() {
    let app = spawn_app().await;
    for path in ["/logs?before=65f1c0ffee0000000000abcd", "/logs/65f1c0ffee0000000000abcd"] {
        let response = app.get(path).await;
        assert_eq!(response.status, 404, "{path}: {}", response.body);
        let text = response.body["message"].as_str().unwrap();
        assert!(text.starts_with("log entry not found: 65f1c0ffee0000000000abcd"), "{path}: {text}");
    }
}

#[tokio::test]
async fn health_and_readiness_answer_when_mongodb_is_up() {
    let app = spawn_app().await;
    assert_eq!(app.get("/health").await.status, 200);
    let ready = app.get("/ready").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.envelope().data.unwrap()["mongodb"], "ok");
}

#[tokio::test]
async fn a_body_short_of_its_content_length_gets_a_408_envelope_within_the_body_timeout() {
    let bound = std::time::Duration::from_millis(300);
    let app = spawn_app_with(|settings| settings.http.body_timeout = bound).await;
    service_kit::testing::assert_short_body_refused(&app.logger.http_url, "/log", bound).await;
}

#[tokio::test]
async fn every_answer_has_the_security_headers_and_a_foreign_host_is_refused() {
    let app = spawn_app().await;
    let undeclared = service_kit::testing::Undeclared { method: reqwest::Method::DELETE, path: "/logs", allow: "GET" };
    service_kit::testing::assert_edge_answers(&app.logger.http_url, undeclared).await;
}
