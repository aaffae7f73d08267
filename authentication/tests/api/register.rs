use serde_json::{Value, json};

use crate::helpers::{TEST_COST, spawn_app};

#[tokio::test]
async fn a_registered_user_can_log_in_at_once() {
    let app = spawn_app().await;
    let body = json!({"email": "Grace@Example.com ", "password": "correct horse", "first_name": "Grace", "last_name": "Hopper"});

    let (status, created) = app.register(&body).await.status_and_envelope();
    assert_eq!(status, 201, "{created:?}");
    assert_eq!(created.message, "created user grace@example.com");
    let user = created.data.expect("the user");
    assert_eq!(user["email"], "grace@example.com", "stored trimmed and lower-cased");
    assert_eq!(user["first_name"], "Grace");
    assert_eq!(user["active"], true, "active unless said otherwise");
    assert!(user.get("password").is_none(), "{user}");

    let (status, login) = app.authenticate("grace@example.com", "correct horse").await.status_and_envelope();
    assert_eq!(status, 202, "{login:?}");
    assert_eq!(login.data.unwrap()["id"], user["id"]);
}

#[tokio::test]
async fn the_stored_password_is_a_bcrypt_hash_of_the_configured_cost() {
    let app = spawn_app().await;
    app.register(&json!({"email": "h@example.com", "password": "correct horse"})).await;

    let row =
        app.db.client().await.query_one("SELECT password FROM users WHERE email = 'h@example.com'", &[]).await.unwrap();
    let hash: String = row.get(0);
    assert!(hash.starts_with(&format!("$2b$0{TEST_COST}$")), "{hash}");
    assert!(bcrypt::verify("correct horse", &hash).unwrap());
}

#[tokio::test]
async fn a_second_registration_of_an_address_is_a_409_whatever_its_case() {
    let app = spawn_app().await;
    let first = app.register(&json!({"email": "dup@example.com", "password": "correct horse"})).await;
    assert_eq!(first.status, 201);

    for email in ["dup@example.com", "DUP@example.com", " dup@example.com"] {
        let (status, body) =
            app.register(&json!({"email": email, "password": "another one"})).await.status_and_envelope();
        assert_eq!(status, 409, "{email:?}: {body:?}");
        assert_eq!(body.message, "a user with the e-mail address dup@example.com already exists");
    }
    let count: i64 = app.db.client().await.query_one("SELECT count(*) FROM users", &[]).await.unwrap().get(0);
    assert_eq!(count, 2, "the seed user and the first registration only");
}

#[tokio::test]
async fn invalid_registrations_get_a_400_that_names_the_field() {
    let app = spawn_app().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("missing email", json!({"password": "correct horse"}), "missing field `email`"),
        ("missing password", json!({"email": "a@b.c"}), "missing field `password`"),
        ("not an address", json!({"email": "a.b.c", "password": "correct horse"}), "`email`"),
        ("short password", json!({"email": "a@b.c", "password": "short"}), "`password`: must be at least 8"),
        (
            "long password",
            json!({"email": "a@b.c", "password": "p".repeat(73)}),
            "`password`: must be at most 72 bytes",
        ),
        (
            "line break in a name",
            json!({"email": "a@b.c", "password": "correct horse", "first_name": "Eve\r\nBcc: x"}),
            "`first_name`",
        ),
        (
            "long name",
            json!({"email": "a@b.c", "password": "correct horse", "last_name": "n".repeat(256)}),
            "`last_name`",
        ),
        (
            "non-boolean active",
            json!({"email": "a@b.c", "password": "correct horse", "active": "yes"}),
            "expected a boolean",
        ),
    ];
    for (why, body, expected) in cases {
        let (status, response) = app.register(&body).await.status_and_envelope();
        assert_eq!(status, 400, "{why}: {response:?}");
        assert!(response.message.contains(expected), "{why}: {:?} should contain {expected:?}", response.message);
        for secret in ["correct horse", "87654321"] {
            assert!(!response.message.contains(secret), "{why}: the password is not echoed");
        }
    }
    let count: i64 = app.db.client().await.query_one("SELECT count(*) FROM users", &[]).await.unwrap().get(0);
    assert_eq!(count, 1, "nothing but the seed user was stored");
}
