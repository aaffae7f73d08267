//! Bad input: each a 4xx in the envelope with a message naming the problem, and nothing
//! reaches a downstream service. The downstreams here are servers that count connections.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{HangingDownstreams, settings_with_downstreams_down, spawn_broker};

const JSON: Option<&str> = Some("application/json");

#[tokio::test]
async fn handle_refuses_bad_input_with_a_4xx_naming_the_problem_and_calls_no_downstream() {
    let downstreams = HangingDownstreams::start().await;
    let app = spawn_broker(downstreams.settings(Duration::from_secs(2))).await;
    let long_data = format!(r#"{{"action":"log","log":{{"name":"n","data":"{}"}}}}"#, "x".repeat(64 * 1024 + 1));
    let cases: Vec<(&str, Option<&str>, String, u16, &str)> = vec![
        ("not JSON", JSON, "{not json".into(), 400, "not valid JSON"),
        ("an empty body", JSON, String::new(), 400, "not valid JSON"),
        ("a JSON array", JSON, "[1, 2]".into(), 400, "must be a JSON object"),
        ("a JSON string", JSON, r#""auth""#.into(), 400, "must be a JSON object"),
        ("no action", JSON, r#"{"auth":{"email":"a@b.c","password":"x"}}"#.into(), 400, r#"missing field "action""#),
        ("an unknown action", JSON, r#"{"action":"delete"}"#.into(), 400, r#"unknown action "delete""#),
        ("an action that is not a string", JSON, r#"{"action":5}"#.into(), 400, "unknown action"),
        (
            "a duplicate key (parsers disagree on which one wins)",
            JSON,
            r#"{"action":"log","action":"auth","auth":{"email":"a@b.c","password":"x"}}"#.into(),
            400,
            r#"duplicate key "action""#,
        ),
        ("auth without its payload", JSON, r#"{"action":"auth"}"#.into(), 400, "missing field `auth`"),
        ("mail without its payload", JSON, r#"{"action":"mail"}"#.into(), 400, "missing field `mail`"),
        (
            "event with its payload under the wrong key",
            JSON,
            r#"{"action":"event","event":{"name":"n","data":"d"}}"#.into(),
            400,
            "missing field `log`",
        ),
        (
            "a name that is a number",
            JSON,
            r#"{"action":"log","log":{"name":5,"data":"d"}}"#.into(),
            400,
            "invalid type",
        ),
        (
            "a password that is not a string",
            JSON,
            r#"{"action":"auth","auth":{"email":"a@b.c","password":true}}"#.into(),
            400,
            "invalid type",
        ),
        (
            "an unknown level",
            JSON,
            r#"{"action":"event","log":{"name":"n","data":"d","level":"LOUD"}}"#.into(),
            400,
            "unknown variant `LOUD`",
        ),
        (
            "a limit that is not a number",
            JSON,
            r#"{"action":"logs","logs":{"limit":"ten"}}"#.into(),
            400,
            "invalid type",
        ),
        (
            "a limit of 0 (refused, no longer raised to 1)",
            JSON,
            r#"{"action":"logs","logs":{"limit":0}}"#.into(),
            400,
            "`logs.limit`: must be at least 1",
        ),
        (
            "a trace id that is not one (a whole traceparent)",
            JSON,
            r#"{"action":"logs","logs":{"trace_id":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}"#.into(),
            400,
            "`logs.trace_id`: must be a trace id of 32 lowercase hex digits",
        ),
        (
            "the all-zero trace id",
            JSON,
            r#"{"action":"logs","logs":{"trace_id":"00000000000000000000000000000000"}}"#.into(),
            400,
            "`logs.trace_id`: must not be all zeros",
        ),
        (
            "an empty password",
            JSON,
            r#"{"action":"auth","auth":{"email":"a@b.c","password":""}}"#.into(),
            400,
            "`auth.password`",
        ),
        (
            "an address that is not one",
            JSON,
            r#"{"action":"auth","auth":{"email":"admin","password":"x"}}"#.into(),
            400,
            "`auth.email`",
        ),
        (
            "a recipient with a header injection",
            JSON,
            r#"{"action":"mail","mail":{"to":"a@b.c\r\nBcc: x@y.z","subject":"s","message":"m"}}"#.into(),
            400,
            "`mail.to`",
        ),
        ("an empty log name", JSON, r#"{"action":"log","log":{"name":" ","data":"d"}}"#.into(), 400, "`log.name`"),
        ("log data over 64 KiB", JSON, long_data, 400, "`log.data`"),
        (
            "a text body",
            Some("text/plain"),
            r#"{"action":"logs"}"#.into(),
            415,
            "Content-Type must be application/json",
        ),
        (
            "a form body",
            Some("application/x-www-form-urlencoded"),
            "action=logs".into(),
            415,
            "Content-Type must be application/json",
        ),
        ("no content type", None, r#"{"action":"logs"}"#.into(), 415, "Content-Type must be application/json"),
    ];
    for (why, content_type, body, status, message) in cases {
        let answer = app.handle_raw(content_type, body).await;
        answer.assert_error(status, message, why);
    }
    assert_eq!(downstreams.connections(), 0, "no invalid request may reach a downstream");
}

#[tokio::test]
async fn a_10_mb_body_is_refused_with_413_before_it_is_read() {
    let downstreams = HangingDownstreams::start().await;
    let app = spawn_broker(downstreams.settings(Duration::from_secs(2))).await;
    let started = Instant::now();
    let answer = app.handle_raw(JSON, vec![b' '; 10 * 1024 * 1024]).await;
    answer.assert_error(413, "larger than 1048576 bytes", "10 MB with a Content-Length");
    assert!(started.elapsed() < Duration::from_secs(2), "refused quickly, took {:?}", started.elapsed());
    assert_eq!(downstreams.connections(), 0);
}

#[tokio::test]
async fn a_chunked_body_is_refused_with_413_once_it_passes_1_mib() {
    let downstreams = HangingDownstreams::start().await;
    let app = spawn_broker(downstreams.settings(Duration::from_secs(2))).await;
    let stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Up to 10 MB in 64 KiB chunks, no Content-Length; the writer stops when the broker hangs up.
    let writer = tokio::spawn(async move {
        let head = "POST /handle HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..160 {
            writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
            writer.write_all(&chunk).await?;
            writer.write_all(b"\r\n").await?;
        }
        writer.write_all(b"0\r\n\r\n").await
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = async {
        while !String::from_utf8_lossy(&answer).contains("}") {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read).await.expect("an answer before the body ends");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("larger than 1048576 bytes"), "{answer}");
    writer.abort();
    assert_eq!(downstreams.connections(), 0);
}

#[tokio::test]
async fn a_body_short_of_its_content_length_gets_a_408_envelope_within_the_body_timeout() {
    let mut settings = settings_with_downstreams_down();
    settings.http.body_timeout = Duration::from_millis(300);
    let app = spawn_broker(settings).await;
    service_kit::testing::assert_short_body_refused(&app.address, "/handle", Duration::from_millis(300)).await;
}
