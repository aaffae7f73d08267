//! What the broker answers by itself: `POST /`, `/ping`, `/health`, CORS and the OpenAPI document.

use std::collections::BTreeSet;

use contract::handle::HandleRequest;
use contract::validate;
use serde_json::{Value, json};

use crate::helpers::{Answer, settings_with_downstreams_down, spawn_broker};

#[tokio::test]
async fn posting_to_the_root_hits_the_broker() {
    let app = spawn_broker(settings_with_downstreams_down()).await;
    let answer = Answer::read(app.http.post(&app.address).send().await.unwrap()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, serde_json::json!({"error": false, "message": "Hit the broker"}));
}

#[tokio::test]
async fn ping_and_health_answer_while_every_downstream_is_down() {
    let app = spawn_broker(settings_with_downstreams_down()).await;
    for path in ["/ping", "/health"] {
        let answer = app.get(path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert_eq!(answer.body["error"], false, "{path}");
    }
}

#[tokio::test]
async fn ready_names_every_downstream_that_is_down_and_stays_ready() {
    // A downstream outage is every replica's: taking them out of rotation would hide the
    // degraded answers (queued mail, log via RabbitMQ, 503 naming the service).
    let app = spawn_broker(settings_with_downstreams_down()).await;
    let answer = app.get("/ready").await;
    assert_eq!((answer.status, &answer.body["message"]), (200, &serde_json::json!("ready")), "{}", answer.body);
    for name in ["authentication", "logger", "mailer", "rabbitmq"] {
        let report = answer.body["data"][name].as_str().unwrap_or_else(|| panic!("no {name} in {}", answer.body));
        assert_ne!(report, "ok", "{name} is down and must not be reported ok");
    }
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_allowed() {
    let app = spawn_broker(settings_with_downstreams_down()).await;
    let origin = &app.settings.cors_allowed_origins[0];
    let response = app
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/handle", app.address))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_lowercase);
    assert_eq!(header("access-control-allow-origin").as_deref(), Some(origin.as_str()));
    assert!(header("access-control-allow-methods").is_some_and(|m| m.contains("post")), "POST allowed");
    assert!(header("access-control-allow-headers").is_some_and(|h| h.contains("content-type")), "JSON allowed");
    assert_eq!(header("access-control-allow-credentials"), None, "no credentials: the broker uses none");
}

#[tokio::test]
async fn a_preflight_from_another_origin_is_not_allowed() {
    let app = spawn_broker(settings_with_downstreams_down()).await;
    let response = app
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/handle", app.address))
        .header("Origin", "http://evil.example.com")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(!response.status().is_success(), "{}", response.status());
    assert!(response.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn the_allowed_origins_come_from_the_settings() {
    let mut settings = settings_with_downstreams_down();
    settings.cors_allowed_origins = vec!["https://app.example.com".into()];
    let app = spawn_broker(settings).await;
    let response = app.http.post(&app.address).header("Origin", "https://app.example.com").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "https://app.example.com");
    let response = app.http.post(&app.address).header("Origin", "http://localhost:8081").send().await.unwrap();
    assert!(response.headers().get("access-control-allow-origin").is_none(), "the default is replaced");
}

/// Every `$ref` in `value`.
fn refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => found.push(target.clone()),
                    _ => refs(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, found)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_action_status_and_the_error_envelope() {
    let app = spawn_broker(settings_with_downstreams_down()).await;
    let response = app.http.get(format!("{}/openapi.json", app.address)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let doc: Value = response.json().await.expect("the document is JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "OpenAPI 3: {}", doc["openapi"]);

    // Every action is a branch of the request body, tagged by `action`.
    let handle = &doc["paths"]["/handle"]["post"];
    assert_eq!(
        handle["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/HandleRequest"
    );
    let branches = doc["components"]["schemas"]["HandleRequest"]["oneOf"].as_array().expect("a oneOf of actions");
    let actions: BTreeSet<&str> =
        branches.iter().filter_map(|branch| branch["properties"]["action"]["enum"][0].as_str()).collect();
    assert_eq!(actions, HandleRequest::ACTIONS.into_iter().collect::<BTreeSet<_>>());

    // Every status the handler answers with, each with a JSON envelope.
    for status in ["200", "202", "400", "401", "404", "413", "415", "429", "502", "503", "504"] {
        let schema = &handle["responses"][status]["content"]["application/json"]["schema"]["$ref"];
        let name = schema.as_str().unwrap_or_else(|| panic!("status {status} has no body schema"));
        assert!(name.starts_with("#/components/schemas/Envelope"), "{status}: {name}");
    }
    let envelope = &doc["components"]["schemas"]["Envelope"];
    assert_eq!(envelope["required"], serde_json::json!(["error", "message"]));
    assert_eq!(envelope["properties"]["error"]["type"], "boolean");

    // The limits the server enforces, stated from the same constants.
    let schemas = &doc["components"]["schemas"];
    let cases = [
        (&schemas["EmailAddress"], "maxLength", json!(validate::MAX_EMAIL_BYTES)),
        (&schemas["EmailAddress"], "format", json!("email")),
        (&schemas["Password"], "maxLength", json!(validate::MAX_PASSWORD_CHARS)),
        (&schemas["Password"], "minLength", json!(1)),
        (&schemas["LogName"], "maxLength", json!(validate::MAX_LOG_NAME_CHARS)),
        (&schemas["LogData"], "maxLength", json!(validate::MAX_LOG_DATA_CHARS)),
        (&schemas["Subject"], "maxLength", json!(validate::MAX_SUBJECT_CHARS)),
        (&schemas["MessageText"], "maxLength", json!(validate::MAX_MESSAGE_CHARS)),
        (&schemas["RecentLimit"], "type", json!("integer")),
        (&schemas["RecentLimit"], "minimum", json!(1)),
        (&schemas["RecentLimit"], "maximum", json!(u32::MAX)),
        (&schemas["EntryId"], "pattern", json!("^[0-9a-fA-F]{24}$")),
        (&schemas["TraceId"], "pattern", json!("^(?!0{32}$)[0-9a-f]{32}$")),
        (&schemas["LogsQuery"]["properties"]["trace_id"]["oneOf"][0], "$ref", json!("#/components/schemas/TraceId")),
        (&schemas["Credentials"], "required", json!(["email", "password"])),
        (&schemas["MailPayload"], "required", json!(["to", "subject", "message"])),
        (&schemas["LogPayload"], "required", json!(["name", "data"])),
    ];
    for (schema, keyword, expected) in cases {
        assert_eq!(schema[keyword], expected, "{keyword} of {schema}");
    }
    for one_line in ["LogName", "Subject"] {
        let pattern = schemas[one_line]["pattern"].as_str().expect("a pattern for the one-line rule");
        assert!(pattern.starts_with("^(?![\\s\\S]*[\\u0000-\\u001F\\u007F-\\u009F])"), "{one_line}: {pattern}");
    }
    assert_eq!(handle["security"], json!([{}, {"bearer": []}]), "a token is optional for /handle as a whole");
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");

    // The operational routes are there too, and no reference dangles.
    for path in ["/", "/ping", "/health", "/ready", "/openapi.json"] {
        assert!(doc["paths"].get(path).is_some(), "{path} is described");
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    for target in found {
        let name = target.strip_prefix("#/components/schemas/").expect("a schema reference");
        assert!(doc["components"]["schemas"].get(name).is_some(), "{target} is defined");
    }
}
