//! Admission control and deadlines: a login nobody waits for, or one beyond the queue, is
//! answered 503 at once, with `Retry-After` and the envelope, and costs no bcrypt run.

use std::time::Instant;

use serde_json::json;
use service_kit::deadline::REQUEST_TIMEOUT;
use service_kit::testing::{Answer, TestPostgres};

use crate::helpers::{SEED_EMAIL, SEED_PASSWORD, settings, spawn_app_with_cost, spawn_with};

/// The real cost: a verify takes long enough to tell "refused at once" from "verified".
const COST: u32 = 12;

fn assert_refused_with_retry_after(answer: &Answer, message: &str) {
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.headers.get("retry-after").map(|v| v.to_str().unwrap()), Some("1"), "{answer:?}");
    assert_eq!(answer.body["error"], true, "{answer:?}");
    assert_eq!(answer.body["message"], message, "{answer:?}");
}

#[tokio::test]
async fn an_expired_request_timeout_is_refused_at_once_without_a_bcrypt_run() {
    let app = spawn_app_with_cost(COST).await;
    // One verify at this cost, measured now on this machine: a refusal must take less.
    let hash = bcrypt::hash(SEED_PASSWORD, COST).unwrap();
    let started = Instant::now();
    assert!(bcrypt::verify(SEED_PASSWORD, &hash).unwrap());
    let one_verify = started.elapsed();

    let started = Instant::now();
    let response = app
        .http
        .post(format!("{}/authenticate", app.address))
        .header(REQUEST_TIMEOUT, "0")
        .json(&json!({"email": SEED_EMAIL, "password": SEED_PASSWORD}))
        .send()
        .await
        .expect("an answer");
    let answer = Answer::read(response).await;
    let took = started.elapsed();

    assert_refused_with_retry_after(&answer, "the request's deadline passed before the password could be checked");
    assert!(took < one_verify, "refused in {took:?}, one verify takes {one_verify:?}");
    // A deadline with time left is served as before.
    let response = app
        .http
        .post(format!("{}/authenticate", app.address))
        .header(REQUEST_TIMEOUT, "5000")
        .json(&json!({"email": SEED_EMAIL, "password": SEED_PASSWORD}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn logins_beyond_the_workers_and_the_queue_get_a_503_with_retry_after() {
    // One worker, no queue: of eight logins sent at once, the ones that find the worker busy
    // are refused; at least one is served.
    let db = TestPostgres::create().await;
    let mut settings = settings(&db.url, COST);
    (settings.bcrypt_concurrency, settings.bcrypt_queue) = (1, 0);
    let app = spawn_with(settings, db).await;

    let logins = (0..8).map(|_| app.authenticate(SEED_EMAIL, SEED_PASSWORD));
    let answers = futures::future::join_all(logins).await;

    let accepted = answers.iter().filter(|answer| answer.status == 202).count();
    let refused: Vec<_> = answers.iter().filter(|answer| answer.status != 202).collect();
    assert!(accepted >= 1, "{answers:?}");
    assert!(!refused.is_empty(), "all eight were served by one worker with no queue: {answers:?}");
    for answer in refused {
        assert_refused_with_retry_after(answer, "the authentication service is overloaded, try again shortly");
    }
    // The worker is free again once they are answered.
    assert_eq!(app.authenticate(SEED_EMAIL, SEED_PASSWORD).await.status, 202);
}

#[tokio::test]
async fn a_caller_that_disconnects_frees_its_place_in_the_queue() {
    // One worker and three queue places, taken by one patient login and three callers that give
    // up after 50 ms (at most one of them on the worker, whose verify then runs to its end).
    // Once they are gone, a new login finds a place; while they held theirs it was refused.
    const IMPATIENT: usize = 3;
    let db = TestPostgres::create().await;
    let mut settings = settings(&db.url, COST);
    (settings.bcrypt_concurrency, settings.bcrypt_queue) = (1, IMPATIENT);
    let app = spawn_with(settings, db).await;
    let impatient = reqwest::Client::builder().timeout(std::time::Duration::from_millis(50)).build().unwrap();
    let give_up = (0..IMPATIENT).map(|_| {
        impatient
            .post(format!("{}/authenticate", app.address))
            .json(&json!({"email": SEED_EMAIL, "password": SEED_PASSWORD}))
            .send()
    });

    let patient = app.authenticate(SEED_EMAIL, SEED_PASSWORD);
    let later = async {
        let gone = futures::future::join_all(give_up).await;
        assert!(gone.iter().all(Result::is_err), "the impatient callers gave up before a verify ended: {gone:?}");
        app.authenticate(SEED_EMAIL, SEED_PASSWORD).await
    };
    let (patient, later) = tokio::join!(patient, later);

    assert_eq!(patient.status, 202, "{patient:?}");
    assert_eq!(later.status, 202, "the places of the callers that left are free: {later:?}");
}
