//! Who did it: the `sub` of the caller's token is stored with the entry of `log` (over tarpc)
//! and of `event` (over RabbitMQ and the listener), and with the login event; `logs` lists it,
//! and pages with `before`.

use broker::protect::ProtectSettings;
use mongodb::bson::doc;
use serde_json::{Value, json};

use crate::stack::{TestStack, spawn_stack, spawn_stack_with};

fn log(action: &str, name: &str) -> Value {
    json!({"action": action, "log": {"name": name, "data": "who did it"}})
}

/// Signs in as the seeded admin; the token and its subject (the user's id).
async fn sign_in(stack: &TestStack) -> (String, String) {
    let login = json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}});
    let answer = stack.broker.handle(&login).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let token = answer.body["data"]["token"].as_str().expect("a token").to_owned();
    (format!("Bearer {token}"), answer.body["data"]["id"].to_string())
}

#[tokio::test]
async fn the_tokens_subject_is_stored_with_log_event_and_login_entries_and_listed_by_logs() {
    let stack = spawn_stack_with(|settings| settings.protect = ProtectSettings::default()).await;
    let broker = &stack.broker;
    let (bearer, sub) = sign_in(&stack).await;

    for action in ["log", "event"] {
        let answer = broker.handle_authorized(&log(action, &format!("{action} with a token")), &bearer).await;
        assert_eq!(answer.status, 202, "{action}: {}", answer.body);
        let answer = broker.handle(&log(action, &format!("{action} without a token"))).await;
        assert_eq!(answer.status, 202, "{action}: {}", answer.body);
    }
    for action in ["log", "event"] {
        let with = stack.wait_for_entry(action, doc! { "name": format!("{action} with a token") }).await;
        assert_eq!(with.get_str("sub"), Ok(sub.as_str()), "{action}: {with}");
        let without = stack.wait_for_entry(action, doc! { "name": format!("{action} without a token") }).await;
        assert!(!without.contains_key("sub"), "{action}: no subject without a token: {without}");
    }
    // The login event's subject is the one its token was issued for.
    let login = stack.wait_for_entry("the login event", doc! { "data": "admin@example.com logged in" }).await;
    assert_eq!(login.get_str("sub"), Ok(sub.as_str()), "{login}");

    let answer = broker.handle_authorized(&json!({"action": "logs", "logs": {"limit": 10}}), &bearer).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let listed: Vec<(String, Option<String>)> = answer.body["data"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| (entry["name"].as_str().unwrap().to_owned(), entry.get("sub").map(|sub| sub.to_string())))
        .collect();
    for action in ["log", "event"] {
        let find = |name: String| listed.iter().find(|(listed, _)| *listed == name).map(|(_, sub)| sub.clone());
        assert_eq!(find(format!("{action} with a token")), Some(Some(format!("\"{sub}\""))), "{listed:?}");
        assert_eq!(find(format!("{action} without a token")), Some(None), "no `sub` key: {listed:?}");
    }
    stack.cleanup().await;
}

#[tokio::test]
async fn a_bad_token_on_an_open_action_is_refused_but_never_stops_a_sign_in() {
    let stack = spawn_stack().await;
    let broker = &stack.broker;
    let stale = "Bearer not-a-token";

    let answer = broker.handle_authorized(&log("log", "with a bad token"), stale).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(answer.message().contains("not a well-formed JWT"), "{}", answer.body);
    assert!(answer.header("www-authenticate").is_some_and(|value| value.starts_with("Bearer ")));
    assert!(stack.stored(doc! { "name": "with a bad token" }).await.is_empty(), "nothing stored");

    let login = json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}});
    let answer = broker.handle_authorized(&login, stale).await;
    assert_eq!(answer.status, 202, "signing in replaces a bad token: {}", answer.body);
    stack.cleanup().await;
}

#[tokio::test]
async fn logs_pages_through_the_entries_with_before_and_an_unknown_before_is_404() {
    let stack = spawn_stack().await;
    let broker = &stack.broker;
    for i in 0..5 {
        assert_eq!(broker.handle(&log("log", &format!("entry {i}"))).await.status, 202);
    }
    let page = |before: Option<String>| {
        let mut logs = json!({"limit": 2});
        if let Some(before) = before {
            logs["before"] = before.into();
        }
        async move {
            let answer = broker.handle(&json!({"action": "logs", "logs": logs})).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            let entries = answer.body["data"].as_array().expect("entries").clone();
            let names: Vec<String> = entries.iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect();
            (names, entries.last().map(|e| e["id"].as_str().unwrap().to_owned()))
        }
    };
    let (first, last) = page(None).await;
    let (second, last) = page(last).await;
    let (third, last) = page(last).await;
    let (fourth, _) = page(last).await;
    assert_eq!(
        [first, second, third, fourth],
        [vec!["entry 4", "entry 3"], vec!["entry 2", "entry 1"], vec!["entry 0"], vec![]],
        "newest first, each page after the last entry of the one before"
    );

    let unknown = broker.handle(&json!({"action": "logs", "logs": {"before": "65f1c0ffee0000000000abcd"}})).await;
    assert_eq!(unknown.status, 404, "as the logger's GET /logs?before= answers: {}", unknown.body);
    assert!(unknown.message().contains("65f1c0ffee0000000000abcd"), "{}", unknown.body);
    let malformed = broker.handle(&json!({"action": "logs", "logs": {"before": "entry 4"}})).await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    assert!(malformed.message().contains("`logs.before`: must be an entry id of 24 hex digits"), "{}", malformed.body);
    stack.cleanup().await;
}
