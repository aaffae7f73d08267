//! Each action's success path against the real services, checked by its effect: a user
//! authenticated, an entry in MongoDB, a mail in the catcher, an event stored through the
//! listener, recent logs returned.

use std::time::{Duration, Instant};

use mongodb::bson::doc;
use serde_json::json;
use service_kit::testing::{MailCatcher, closed_port, eventually, unique_name};

use crate::stack::{named, spawn_stack, spawn_stack_with};

const SEED_EMAIL: &str = "admin@example.com";
const SEED_PASSWORD: &str = "verysecret";

#[tokio::test]
async fn ready_is_200_when_every_downstream_answers() {
    let stack = spawn_stack().await;
    let answer = stack.broker.get("/ready").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    for name in ["authentication", "logger", "mailer", "rabbitmq"] {
        assert_eq!(answer.body["data"][name], "ok", "{name}");
    }
    stack.cleanup().await;
}

#[tokio::test]
async fn auth_with_the_seed_user_answers_202_with_the_user_and_records_the_login() {
    let stack = spawn_stack().await;
    let answer =
        stack.broker.handle(&json!({"action": "auth", "auth": {"email": SEED_EMAIL, "password": SEED_PASSWORD}})).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.message(), "Authenticated!");
    let user = &answer.body["data"];
    assert_eq!(user["email"], SEED_EMAIL);
    assert_eq!(user["active"], true);
    assert!(user.get("password").is_none(), "never the hash: {user}");

    let entry = stack
        .wait_for_entry("the login event", doc! { "name": "authentication", "data": format!("{SEED_EMAIL} logged in") })
        .await;
    assert_eq!(entry.get_str("level").unwrap(), "INFO");
    assert!(entry.get_str("event_id").is_ok(), "stored through the listener: {entry}");
    stack.cleanup().await;
}

#[tokio::test]
async fn auth_with_a_wrong_password_answers_401_and_records_the_failed_attempt_without_the_password() {
    let stack = spawn_stack().await;
    let password = unique_name("wrong");
    let answer =
        stack.broker.handle(&json!({"action": "auth", "auth": {"email": SEED_EMAIL, "password": password}})).await;
    answer.assert_error(401, "invalid credentials", "wrong password");
    assert_eq!(answer.message(), "invalid credentials");

    let entry = stack
        .wait_for_entry(
            "the failed login event",
            doc! { "name": "authentication", "data": format!("failed login for {SEED_EMAIL}") },
        )
        .await;
    assert_eq!(entry.get_str("level").unwrap(), "WARNING");
    for stored in stack.stored(doc! {}).await {
        assert!(!stored.to_string().contains(&password), "the password was stored: {stored}");
    }
    stack.cleanup().await;
}

#[tokio::test]
async fn a_login_succeeds_at_once_when_its_event_cannot_be_published() {
    let stack = spawn_stack_with(|settings| {
        settings.rabbit_url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", closed_port()).into();
        settings.rabbit_timeout = Duration::from_secs(3);
    })
    .await;
    let started = Instant::now();
    let answer =
        stack.broker.handle(&json!({"action": "auth", "auth": {"email": SEED_EMAIL, "password": SEED_PASSWORD}})).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert!(started.elapsed() < Duration::from_secs(3), "the answer waited for RabbitMQ: {:?}", started.elapsed());
    stack.cleanup().await;
}

#[tokio::test]
async fn log_stores_the_entry_in_mongodb() {
    let stack = spawn_stack().await;
    let name = unique_name("log");
    let answer =
        stack.broker.handle(&json!({"action": "log", "log": {"name": name, "data": "direct", "level": "ERROR"}})).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body, json!({"error": false, "message": "logged"}));
    let stored = stack.stored(named(&name)).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].get_str("data").unwrap(), "direct");
    assert_eq!(stored[0].get_str("level").unwrap(), "ERROR");
    stack.cleanup().await;
}

#[tokio::test]
async fn event_is_confirmed_by_rabbitmq_and_stored_through_the_listener() {
    let stack = spawn_stack().await;
    let name = unique_name("event");
    let answer = stack
        .broker
        .handle(&json!({"action": "event", "log": {"name": name, "data": "via the queue", "level": "WARNING"}}))
        .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body, json!({"error": false, "message": "logged via RabbitMQ"}));
    let entry = stack.wait_for_entry("the event in the log store", named(&name)).await;
    assert_eq!(entry.get_str("data").unwrap(), "via the queue");
    assert_eq!(entry.get_str("level").unwrap(), "WARNING");
    assert!(entry.get_str("event_id").is_ok(), "{entry}");
    stack.cleanup().await;
}

#[tokio::test]
async fn mail_is_sent_through_the_mailer_and_caught() {
    let stack = spawn_stack().await;
    let to = MailCatcher::unique_address();
    let subject = unique_name("subject");
    let answer = stack
        .broker
        .handle(&json!({"action": "mail", "mail": {"from": "me@example.com", "to": to, "subject": subject, "message": "Hello world!"}}))
        .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.message(), format!("Message sent to {to}"));
    let mail = stack.mail.wait_for_mail_to(&to, Duration::from_secs(10)).await;
    assert_eq!(mail.subject, subject);
    assert_eq!(mail.from[0].address, "me@example.com");
    assert!(mail.text.as_deref().unwrap_or_default().contains("Hello world!"), "{mail:?}");
    stack.cleanup().await;
}

#[tokio::test]
async fn a_mail_only_the_mailer_used_to_refuse_is_refused_at_the_edge_with_the_same_rule() {
    let stack = spawn_stack().await;
    // The broker once let this through to the mailer's own check; the rule is now one, the contract's.
    let answer =
        stack.broker.handle(&json!({"action": "mail", "mail": {"to": "a@b..c", "subject": "s", "message": "m"}})).await;
    answer.assert_error(400, "`mail.to`: must be an e-mail address", "an empty domain label");
    stack.cleanup().await;
}

#[tokio::test]
async fn logs_returns_the_newest_entries_first() {
    let stack = spawn_stack().await;
    let names: Vec<String> = (0..3).map(|i| unique_name(&format!("entry{i}"))).collect();
    for name in &names {
        let answer = stack.broker.handle(&json!({"action": "log", "log": {"name": name, "data": "d"}})).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
    }
    let answer = stack.broker.handle(&json!({"action": "logs", "logs": {"limit": 2}})).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["error"], false);
    let returned: Vec<&str> =
        answer.body["data"].as_array().expect("a list").iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(returned, [names[2].as_str(), names[1].as_str()]);

    let answer = stack.broker.handle(&json!({"action": "logs"})).await;
    assert_eq!(answer.body["data"].as_array().map(Vec::len), Some(3), "no payload: the default limit");
    stack.cleanup().await;
}

#[tokio::test]
async fn a_log_goes_through_rabbitmq_at_once_when_the_logger_stopped() {
    let stack = spawn_stack().await;
    let answer = stack.broker.handle(&json!({"action": "log", "log": {"name": "before", "data": "d"}})).await;
    assert_eq!((answer.status, answer.message()), (202, "logged"), "{}", answer.body);
    // Not awaited: the logger's RPC side closes at once, its HTTP side drains in the background.
    let logger = stack.logger.stop_handle();
    tokio::spawn(async move { logger.stop().await });
    let answer = eventually("the broker to notice the logger stopped", Duration::from_secs(10), || async {
        let started = Instant::now();
        let answer = stack.broker.handle(&json!({"action": "log", "log": {"name": "after", "data": "d"}})).await;
        (answer.message() != "logged").then_some((answer, started.elapsed()))
    })
    .await;
    let (answer, took) = answer;
    // `fallback.rs` shows the entry stored once a logger is back.
    assert_eq!((answer.status, answer.message()), (202, "logged via RabbitMQ (logger unavailable)"), "{}", answer.body);
    assert!(took < stack.broker.settings.logger_timeout, "took {took:?}");
    stack.cleanup().await;
}
