//! Secrets never printed: after a round of every action that handles one (a registration and a
//! login with a password of the test's own, a wrong password, a token sent with `log`, `event`,
//! `logs` and `mail`), the logs of all six services of the running stack hold none of them, no
//! URL with a password in it (the DSN, the AMQP URL) and no private key.
//!
//! The stack's logs are the files `project/stack.sh` writes (`.local/stack/<service>.log`, or
//! `E2E_STACK_LOGS`). The scan reads what every test of the run has logged so far, not only this
//! one's requests; it runs once every effect of its own requests is visible, so their log lines are
//! written (each service writes a line as it logs it).

use std::path::{Path, PathBuf};

use serde_json::json;
use service_kit::testing::{self, MailCatcher, unique_name};

use crate::helpers::{EFFECT_TIMEOUT, stack};

/// The directory of the stack's log files (default: what `project/stack.sh` writes at offset 0).
pub const E2E_STACK_LOGS: &str = "E2E_STACK_LOGS";

const SERVICES: [&str; 6] = ["authentication", "logger", "mailer", "listener", "broker", "frontend"];

fn logs_dir() -> PathBuf {
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.local/stack");
    PathBuf::from(testing::env_or(E2E_STACK_LOGS, &default.to_string_lossy()))
}

/// What in `text` gives a secret away, one description per find.
fn leaks(text: &str, secrets: &[(&str, &str)]) -> Vec<String> {
    let mut found: Vec<String> = secrets
        .iter()
        .filter(|(_, secret)| text.contains(secret))
        .map(|(what, _)| format!("{what} in clear"))
        .collect();
    found.extend(
        text.lines().filter(|line| url_with_password(line)).map(|line| format!("a URL with a password: {line}")),
    );
    if text.contains("PRIVATE KEY") {
        found.push("a PEM private key".to_owned());
    }
    found
}

/// Whether `line` holds `scheme://user:password@…` with a non-empty password.
fn url_with_password(line: &str) -> bool {
    line.match_indices("://").any(|(at, _)| {
        let rest = &line[at + 3..];
        let authority = rest.split(['/', ' ', '"', '\'', '?', '#']).next().unwrap_or_default();
        authority
            .rsplit_once('@')
            .and_then(|(userinfo, _)| userinfo.split_once(':'))
            .is_some_and(|(_, password)| !password.is_empty())
    })
}

#[test]
fn the_scan_finds_a_planted_password_url_and_key() {
    let secrets = [("the password", "pw-planted-123")];
    assert!(leaks("INFO login ok for a@example.com\nno secrets here at postgres://host/db", &secrets).is_empty());
    for planted in [
        "WARN login failed password=pw-planted-123",
        "ERROR connect to postgres://postgres:password@127.0.0.1:5432/users failed",
        "ERROR amqp \"amqp://guest:guest@127.0.0.1:5672/%2f\" refused",
        "DEBUG key -----BEGIN PRIVATE KEY----- MC4CAQ",
    ] {
        assert_eq!(leaks(planted, &secrets).len(), 1, "{planted}");
    }
}

#[tokio::test]
async fn no_service_logs_a_password_token_dsn_or_key_in_a_round_of_every_action() {
    let stack = stack().await;
    let dir = logs_dir();

    let user = stack.register().await;
    let wrong = unique_name("wrong-pw");
    let refused = stack.handle(&json!({"action": "auth", "auth": {"email": user.email, "password": wrong}})).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let login =
        stack.handle(&json!({"action": "auth", "auth": {"email": user.email, "password": user.password}})).await;
    assert_eq!(login.status, 202, "{}", login.body);
    let token = login.body["data"]["token"].as_str().expect("a login answers with a token").to_owned();

    let name = unique_name("secrets-round");
    let catcher = MailCatcher::new();
    let to = MailCatcher::unique_address();
    for body in [
        json!({"action": "log", "log": {"name": name, "data": "direct"}}),
        json!({"action": "event", "log": {"name": name, "data": "through RabbitMQ"}}),
        json!({"action": "logs", "logs": {"limit": 5}}),
        json!({"action": "mail", "mail": {"from": "secrets@example.com", "to": to, "subject": name, "message": "hi"}}),
    ] {
        let url = format!("{}/handle", stack.broker_url);
        let answer = testing::Answer::read(
            stack.http.post(&url).bearer_auth(&token).json(&body).send().await.expect("POST /handle"),
        )
        .await;
        assert!((200..300).contains(&answer.status), "{body}: {} {}", answer.status, answer.body);
    }
    // Every effect visible: the login events, both entries and the mail have gone through every
    // service that logs them.
    stack
        .wait_for_entry(
            "the failed login event",
            mongodb::bson::doc! { "name": "authentication", "data": format!("failed login for {}", user.email) },
        )
        .await;
    stack.wait_for_entry("the event", mongodb::bson::doc! { "name": &name, "data": "through RabbitMQ" }).await;
    stack.wait_for_entry("the log entry", mongodb::bson::doc! { "name": &name, "data": "direct" }).await;
    catcher.wait_for_mail_to(&to, EFFECT_TIMEOUT).await;

    let signature = token.rsplit('.').next().expect("a JWT has three parts").to_owned();
    let secrets = [
        ("the user's password", user.password.as_str()),
        ("a wrong password", wrong.as_str()),
        ("the seed user's password", "verysecret"),
        ("a token", signature.as_str()),
    ];
    let mut found = Vec::new();
    for name in SERVICES {
        let path = dir.join(format!("{name}.log"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (is the stack running from this checkout? {E2E_STACK_LOGS})", path.display())
        });
        assert!(!text.is_empty(), "{} is empty: the scan would prove nothing", path.display());
        found.extend(leaks(&text, &secrets).into_iter().map(|leak| format!("{name}: {leak}")));
    }
    assert!(found.is_empty(), "secrets in the stack's logs:\n{}", found.join("\n"));
}
