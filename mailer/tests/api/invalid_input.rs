use serde_json::json;
use service_kit::testing::MailCatcher;

use crate::helpers::{mail_to, spawn_app, spawn_app_with, test_settings};

#[tokio::test]
async fn send_returns_a_400_naming_the_field_when_a_field_is_invalid() {
    let app = spawn_app().await;
    let to = MailCatcher::unique_address();
    let injected = MailCatcher::unique_address();
    let with = |key: &str, value: serde_json::Value| {
        let mut body = mail_to(&to);
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = mail_to(&to);
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let cases = [
        (with("from", json!("not-an-address")), "`from`", "an invalid from"),
        (with("from", json!("Evil <evil@example.com>")), "`from`", "a from with a display name"),
        (with("to", json!("")), "`to`", "an empty to"),
        (with("to", json!("nobody")), "`to`", "an invalid to"),
        (with("to", json!(format!("{to}\r\nBcc: {injected}"))), "`to`", "CR/LF in to (header injection)"),
        (with("to", json!(format!("{to}, {injected}"))), "`to`", "two recipients in to"),
        (with("subject", json!(format!("Hi\r\nBcc: {injected}"))), "`subject`", "CR/LF in subject (header injection)"),
        (with("subject", json!("Hi\nthere")), "`subject`", "a bare LF in subject"),
        (with("subject", json!("")), "`subject`", "an empty subject"),
        (with("subject", json!("s".repeat(256))), "`subject`", "a 256-character subject"),
        (with("message", json!("")), "`message`", "an empty message"),
        (with("message", json!("  \n ")), "`message`", "a blank message"),
        (with("message", json!("m".repeat(100 * 1024 + 1))), "`message`", "a message over 100 KiB"),
        (without("to"), "missing field `to`", "a missing to"),
        (without("subject"), "missing field `subject`", "a missing subject"),
        (without("message"), "missing field `message`", "a missing message"),
        (with("to", json!(42)), "invalid type", "a number as to"),
    ];
    for (body, expected, why) in cases {
        let (status, reply) = app.send(&body).await.status_and_envelope();
        assert_eq!(status, 400, "{why}: {reply:?}");
        assert!(reply.error, "{why}");
        assert!(reply.message.contains(expected), "{why}: {:?} should name {expected}", reply.message);
    }
    assert!(app.catcher.mails_to(&to).await.is_empty(), "no invalid request was sent");
    assert!(app.catcher.mails_to(&injected).await.is_empty(), "no injected recipient got a mail");
}

#[tokio::test]
async fn send_refuses_bodies_that_are_not_json_objects() {
    let app = spawn_app().await;
    let valid = mail_to(&MailCatcher::unique_address()).to_string();
    let cases = [
        (r#"{"to": "a@b.c", "#.to_owned(), "application/json", 400, "not valid JSON", "malformed JSON"),
        (String::new(), "application/json", 400, "not valid JSON", "an empty body"),
        ("[1, 2]".to_owned(), "application/json", 400, "invalid request", "a JSON array"),
        (
            r#"{"to":"a@b.c","to":"b@c.d","subject":"s","message":"m"}"#.to_owned(),
            "application/json",
            400,
            r#"duplicate key "to""#,
            "a duplicate key",
        ),
        (valid.clone(), "text/plain", 415, "Content-Type must be application/json", "a wrong content type"),
        (valid, "application/x-www-form-urlencoded", 415, "Content-Type must be application/json", "a form"),
    ];
    for (body, content_type, expected_status, expected, why) in cases {
        let (status, reply) = app.send_raw(body, content_type).await.status_and_envelope();
        assert_eq!(status, expected_status, "{why}: {reply:?}");
        assert!(reply.message.contains(expected), "{why}: {:?} should contain {expected:?}", reply.message);
    }
}

#[tokio::test]
async fn send_refuses_a_body_over_one_mebibyte_with_a_413() {
    let app = spawn_app().await;
    let body = mail_to(&MailCatcher::unique_address());
    let mut huge = body.clone();
    huge["message"] = json!("m".repeat(1024 * 1024));

    let (status, reply) = app.send(&huge).await.status_and_envelope();

    assert_eq!(status, 413, "{reply:?}");
}

#[tokio::test]
async fn a_body_short_of_its_content_length_gets_a_408_envelope_within_the_body_timeout() {
    let bound = std::time::Duration::from_millis(300);
    let mut settings = test_settings();
    settings.http.body_timeout = bound;
    let app = spawn_app_with(settings).await;
    service_kit::testing::assert_short_body_refused(&app.address, "/send", bound).await;
}
