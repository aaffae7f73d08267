use authentication::{Application, Settings};
use service_kit::Env;
use service_kit::testing::TestPostgres;

use crate::helpers::{SEED_EMAIL, SEED_PASSWORD, TEST_COST, settings, spawn_with};

async fn count(db: &TestPostgres, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn two_replicas_starting_at_once_on_a_fresh_database_both_start_with_one_seed_user() {
    let db = TestPostgres::create().await;

    let (first, second) = tokio::join!(
        Application::build(settings(&db.url, TEST_COST)),
        Application::build(settings(&db.url, TEST_COST)),
    );

    first.expect("the first replica starts");
    second.expect("the second replica starts");
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM schema_migrations").await, 2);
}

#[tokio::test]
async fn a_restart_changes_nothing_and_does_not_bring_back_a_deleted_seed_user() {
    let db = TestPostgres::create().await;
    Application::build(settings(&db.url, TEST_COST)).await.expect("first start");
    let client = db.client().await;
    client
        .execute("INSERT INTO users (email, password, user_active) VALUES ('kept@example.com', 'x', 1)", &[])
        .await
        .unwrap();
    client.execute("DELETE FROM users WHERE email = $1", &[&SEED_EMAIL]).await.unwrap();

    Application::build(settings(&db.url, TEST_COST)).await.expect("second start");

    let emails: Vec<String> =
        client.query("SELECT email FROM users", &[]).await.unwrap().iter().map(|row| row.get(0)).collect();
    assert_eq!(emails, vec!["kept@example.com".to_owned()]);
}

#[tokio::test]
async fn a_database_that_already_has_the_users_table_is_taken_over_as_it_is() {
    let db = TestPostgres::create().await;
    let client = db.client().await;
    client
        .batch_execute(include_str!("../../migrations/0001_create_users.sql"))
        .await
        .expect("the table of an earlier deployment");
    client
        .execute(
            "INSERT INTO users (email, password, user_active) VALUES ($1, $2, 1)",
            &[&SEED_EMAIL, &bcrypt::hash("an older password", 4).unwrap()],
        )
        .await
        .unwrap();

    let app = spawn_with(settings(&db.url, TEST_COST), db).await;

    assert_eq!(app.authenticate(SEED_EMAIL, "an older password").await.status, 202);
    assert_eq!(count(&app.db, "SELECT count(*) FROM users").await, 1);
}

#[tokio::test]
async fn by_default_the_seed_user_is_hashed_at_cost_12() {
    let db = TestPostgres::create().await;
    let mut defaults = Settings::from_env(&Env::default()).unwrap();
    defaults.http = service_kit::HttpSettings::ephemeral();
    defaults.database.dsn = db.url.clone().into();

    let app = spawn_with(defaults, db).await;

    let hash: String = app.db.client().await.query_one("SELECT password FROM users", &[]).await.unwrap().get(0);
    assert!(hash.starts_with("$2b$12$"), "{hash}");
    let (status, body) = app.authenticate(SEED_EMAIL, SEED_PASSWORD).await.status_and_envelope();
    assert_eq!(status, 202, "{body:?}");
}

#[tokio::test]
async fn hashes_of_any_cost_and_any_bcrypt_version_verify() {
    let app = crate::helpers::spawn_app().await;
    let client = app.db.client().await;
    let parts = bcrypt::hash_with_result("old password", 5).unwrap();
    let hashes = [
        ("2a@example.com", parts.format_for_version(bcrypt::Version::TwoA)), // Go's x/crypto/bcrypt
        ("2y@example.com", parts.format_for_version(bcrypt::Version::TwoY)), // PHP
        ("2b@example.com", bcrypt::hash("old password", 6).unwrap()),
    ];
    for (email, hash) in &hashes {
        client
            .execute("INSERT INTO users (email, password, user_active) VALUES ($1, $2, 1)", &[email, hash])
            .await
            .unwrap();
    }
    for (email, hash) in &hashes {
        let (status, body) = app.authenticate(email, "old password").await.status_and_envelope();
        assert_eq!(status, 202, "{} with {hash}: {body:?}", email);
        assert_eq!(app.authenticate(email, "wrong password").await.status, 401, "{email}");
    }
}

#[tokio::test]
async fn migrations_run_by_several_replicas_at_the_same_moment_all_succeed_at_the_first_attempt() {
    // Application::build retries a failed migration; this checks the runner itself, without retries.
    let db = TestPostgres::create().await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(db.client().await);
    }
    let hash = bcrypt::hash(SEED_PASSWORD, 4).unwrap();

    let outcomes =
        futures::future::join_all(clients.iter_mut().map(|client| authentication::migrations::run(client, &hash)))
            .await;

    let applied: Vec<usize> = outcomes.into_iter().map(|outcome| outcome.expect("no replica fails")).collect();
    assert_eq!(applied.iter().sum::<usize>(), 2, "each migration applied once in all: {applied:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 1);
}
