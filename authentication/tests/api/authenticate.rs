use std::time::Instant;

use serde_json::{Value, json};

use crate::helpers::{SEED_EMAIL, SEED_PASSWORD, spawn_app, spawn_app_with_cost};

#[tokio::test]
async fn the_seed_user_logs_in_with_a_202_and_its_user_data() {
    let app = spawn_app().await;

    let (status, body) = app.authenticate(SEED_EMAIL, SEED_PASSWORD).await.status_and_envelope();

    assert_eq!(status, 202, "{body:?}");
    assert!(!body.error);
    assert_eq!(body.message, "Logged in user admin@example.com");
    let user = body.data.expect("the user");
    assert_eq!(user["email"], SEED_EMAIL);
    assert_eq!(user["first_name"], "Admin");
    assert_eq!(user["last_name"], "User");
    assert_eq!(user["active"], true);
    assert!(user["id"].is_i64(), "{user}");
    for field in ["created_at", "updated_at"] {
        assert!(user[field].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()), "{user}");
    }
    let mut keys: Vec<&String> = user.as_object().unwrap().keys().collect();
    keys.sort();
    let expected =
        ["active", "created_at", "email", "expires_in", "first_name", "id", "last_name", "token", "updated_at"];
    assert_eq!(keys, expected, "the user's public fields and the token, never the hash");
    assert_eq!(user["expires_in"], 900);

    // The token's key is the one the JWKS publishes.
    let token = user["token"].as_str().expect("a token");
    let header = jsonwebtoken::decode_header(token).expect("a JWT");
    let jwks: serde_json::Value =
        app.http.get(format!("{}/.well-known/jwks.json", app.address)).send().await.unwrap().json().await.unwrap();
    let kid = &jwks["keys"][0]["kid"];
    assert!(kid.is_string() && jwks["keys"][0]["crv"] == "Ed25519", "{jwks}");
    assert!(!jwks.to_string().contains("\"d\""), "no private part in the JWKS: {jwks}");
    assert_eq!(header.kid.as_deref(), kid.as_str(), "{header:?}");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
}

#[tokio::test]
async fn the_address_is_trimmed_and_compared_case_insensitively() {
    let app = spawn_app().await;

    let (status, body) = app.authenticate("  Admin@EXAMPLE.com ", SEED_PASSWORD).await.status_and_envelope();

    assert_eq!(status, 202, "{body:?}");
    assert_eq!(body.data.unwrap()["email"], SEED_EMAIL);
}

#[tokio::test]
async fn unknown_address_wrong_password_and_inactive_user_get_the_same_401() {
    let app = spawn_app().await;
    let inactive = app.registered_user("the right password", false).await;
    let cases = [
        ("nobody@example.com", SEED_PASSWORD, "unknown address"),
        (SEED_EMAIL, "not the password", "wrong password"),
        (SEED_EMAIL, "VERYSECRET", "password in the wrong case"),
        (inactive.as_str(), "the right password", "inactive user with the right password"),
    ];
    for (email, password, why) in cases {
        let response = app.authenticate(email, password).await;
        let (status, text) = (response.status, response.text);
        assert_eq!(status, 401, "{why}: {text}");
        assert_eq!(text, r#"{"error":true,"message":"invalid credentials"}"#, "{why}: the very same body");
        assert!(!text.contains(password), "{why}: the password is not echoed");
    }
}

#[tokio::test]
async fn an_unknown_address_takes_as_long_as_a_wrong_password() {
    // Cost 10 makes one bcrypt run (tens of ms) stand out from a lookup (well under 1 ms): a
    // login that skipped bcrypt for unknown addresses would take a small fraction of the time.
    let app = spawn_app_with_cost(10).await;
    let active = app.registered_user("the right password", true).await;
    let inactive = app.registered_user("the right password", false).await;
    let mut medians = Vec::new();
    for (email, password) in [
        (active.as_str(), "a wrong password"),
        ("nobody@example.com", "a password"),
        (inactive.as_str(), "the right password"),
    ] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            assert_eq!(app.authenticate(email, password).await.status, 401);
            times.push(started.elapsed());
        }
        times.sort();
        medians.push(times[2]);
    }
    let (wrong, unknown, inactive) = (medians[0], medians[1], medians[2]);
    assert!(unknown > wrong / 2, "unknown address {unknown:?} vs wrong password {wrong:?}");
    assert!(inactive > wrong / 2, "inactive user {inactive:?} vs wrong password {wrong:?}");
}

/// (why, content type, body, expected status, part of the expected message)
type BadInput<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);

#[tokio::test]
async fn bad_input_gets_a_4xx_that_names_the_problem() {
    let app = spawn_app().await;
    let json = Some("application/json");
    let long_password = "p".repeat(10_000);
    let huge = format!(r#"{{"email":"a@b.c","password":"{}"}}"#, "x".repeat(1024 * 1024 + 1));
    let body = |value: Value| value.to_string().into_bytes();
    let cases: Vec<BadInput> = vec![
        ("malformed JSON", json, br#"{"email": "a@b.c", "password": "#.to_vec(), 400, "not valid JSON"),
        ("not an object", json, b"[1, 2]".to_vec(), 400, "invalid type"),
        ("missing password", json, body(json!({"email": "a@b.c"})), 400, "missing field `password`"),
        ("missing email", json, body(json!({"password": "x"})), 400, "missing field `email`"),
        ("numeric password", json, body(json!({"email": "a@b.c", "password": 12345})), 400, "expected a string"),
        ("null email", json, body(json!({"email": null, "password": "x"})), 400, "expected a string"),
        ("empty password", json, body(json!({"email": "a@b.c", "password": ""})), 400, "`password`: must not be empty"),
        (
            "10 kB password",
            json,
            body(json!({"email": "a@b.c", "password": long_password})),
            400,
            "`password`: must be at most 72 characters",
        ),
        (
            "72 characters over 72 bytes: no account has such a password",
            json,
            body(json!({"email": "admin@example.com", "password": "é".repeat(72)})),
            401,
            "invalid credentials",
        ),
        ("empty email", json, body(json!({"email": " ", "password": "x"})), 400, "`email`: must not be empty"),
        ("not an address", json, body(json!({"email": "admin", "password": "x"})), 400, "`email`: must be an e-mail"),
        ("body over 1 MiB", json, huge.into_bytes(), 413, "larger than 1048576 bytes"),
        (
            "text content type",
            Some("text/plain"),
            body(json!({"email": "a@b.c", "password": "x"})),
            415,
            "application/json",
        ),
        // Read as JSON, as the Go original's broker sends it (see `go_original.rs`): here, an unknown user.
        ("no content type", None, body(json!({"email": "a@b.c", "password": "x"})), 401, "invalid credentials"),
    ];
    for (why, content_type, payload, expected_status, expected_message) in cases {
        let (status, body) = app.post_raw("/authenticate", content_type, payload).await.status_and_envelope();
        assert_eq!(status, expected_status, "{why}: {body:?}");
        assert!(body.error, "{why}");
        assert!(body.message.contains(expected_message), "{why}: {:?} should name the problem", body.message);
        assert!(
            !body.message.contains("ppppp") && !body.message.contains("12345"),
            "{why}: the password is not echoed"
        );
    }
}
