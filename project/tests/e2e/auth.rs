//! `auth`: a user registered with the authentication service (in PostgreSQL) logs in through
//! the broker; every attempt is recorded in MongoDB through RabbitMQ and the listener, never
//! with the password.

use mongodb::bson::doc;
use serde_json::json;
use service_kit::testing::unique_name;

use crate::helpers::{assert_not_stored, stack};

#[tokio::test]
async fn a_user_registered_with_the_authentication_service_logs_in_through_the_broker() {
    let stack = stack().await;
    let user = stack.register().await;

    // The user is in PostgreSQL, with a bcrypt hash instead of the password.
    let rows = stack
        .users_db()
        .await
        .query("SELECT id, password, user_active FROM users WHERE email = $1", &[&user.email])
        .await
        .expect("query the users table");
    assert_eq!(rows.len(), 1, "one row for {}", user.email);
    let hash: String = rows[0].get("password");
    assert!(hash.starts_with("$2"), "a bcrypt hash, not {hash:?}");
    assert_ne!(hash, user.password);
    assert_eq!(rows[0].get::<_, i32>("user_active"), 1);

    let answer =
        stack.handle(&json!({"action": "auth", "auth": {"email": user.email, "password": user.password}})).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body["error"], false);
    assert_eq!(answer.message(), "Authenticated!");
    let data = &answer.body["data"];
    assert_eq!(data["email"], user.email.as_str(), "{data}");
    assert_eq!(data["id"], rows[0].get::<_, i32>("id"), "the registered user: {data}");
    assert_eq!(data["id"], user.user["id"], "{data}");
    assert_eq!(
        (&data["first_name"], &data["last_name"], &data["active"]),
        (&json!("End"), &json!("Toend"), &json!(true))
    );
    let text = answer.body.to_string();
    assert!(!text.contains(&user.password) && !text.contains(&hash), "neither password nor hash in {text}");
}

#[tokio::test]
async fn a_login_through_the_broker_is_recorded_in_mongodb_through_the_listener_without_the_password() {
    let stack = stack().await;
    let user = stack.register().await;
    let answer =
        stack.handle(&json!({"action": "auth", "auth": {"email": user.email, "password": user.password}})).await;
    assert_eq!((answer.status, answer.message()), (202, "Authenticated!"), "{}", answer.body);

    let entry = stack
        .wait_for_entry(
            "the login event in MongoDB",
            doc! { "name": "authentication", "data": format!("{} logged in", user.email) },
        )
        .await;
    assert_eq!(entry.get_str("level").expect("a level"), "INFO", "{entry}");
    assert!(entry.get_str("event_id").is_ok(), "stored through RabbitMQ and the listener: {entry}");
    let scanned = stack.entries_since_start().await;
    assert!(scanned.contains(&entry), "the scan covers the login event: {scanned:?}");
    for stored in &scanned {
        assert_not_stored(stored, &user.password, "the password");
    }
}

#[tokio::test]
async fn a_wrong_password_answers_401_invalid_credentials_and_is_recorded_without_the_password() {
    let stack = stack().await;
    let user = stack.register().await;
    let wrong = unique_name("wrong");
    let answer = stack.handle(&json!({"action": "auth", "auth": {"email": user.email, "password": wrong}})).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(answer.body, json!({"error": true, "message": "invalid credentials"}));

    let entry = stack
        .wait_for_entry(
            "the failed login event in MongoDB",
            doc! { "name": "authentication", "data": format!("failed login for {}", user.email) },
        )
        .await;
    assert_eq!(entry.get_str("level").expect("a level"), "WARNING", "{entry}");
    let scanned = stack.entries_since_start().await;
    assert!(scanned.contains(&entry), "the scan covers the failed login event: {scanned:?}");
    for stored in &scanned {
        assert_not_stored(stored, &wrong, "the wrong password");
        assert_not_stored(stored, &user.password, "the password");
    }
}
