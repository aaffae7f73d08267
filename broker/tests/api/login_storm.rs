//! A login storm through the broker against the real authentication service: admission control
//! and deadlines keep the bcrypt workers busy with callers that still wait, refuse the rest
//! at once with 503, and leave `/ping` fast. Figures are ratios to a bound measured in the
//! same run, so that the test holds on a noisy shared machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use service_kit::testing::TestPostgres;
use service_kit::{Env, HttpSettings};

use crate::helpers::{settings_with_downstreams_down, spawn_broker};

/// Below production's 12, so that one storm on a busy 2-core box has enough logins for a
/// ratio (at 12 a verify took over a second there): admission control does not depend on it.
const COST: u32 = 10;
/// Workers in the authentication service: one core fewer than the machine has (at least one),
/// as a deployment would size them. The broker, the service's HTTP side, PostgreSQL and the
/// test's own clients need CPU too; with a worker on every core they take it from bcrypt and the
/// storm measures the machine, not admission control (on 2 cores: 83% of a 2-thread bound).
fn bcrypt_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| cores.get().saturating_sub(1).max(1))
}
const CLIENTS: usize = 64;
const STORM: Duration = Duration::from_secs(8);
const SEED_EMAIL: &str = authentication::migrations::SEED_EMAIL;
const SEED_PASSWORD: &str = authentication::migrations::SEED_PASSWORD;

/// Logins per second that `bcrypt_concurrency()` threads doing nothing but `bcrypt::verify`
/// reach here and now: the most the service could serve.
fn measured_bcrypt_bound() -> f64 {
    let hash = bcrypt::hash(SEED_PASSWORD, COST).unwrap();
    let measure = Duration::from_secs(2);
    let started = Instant::now();
    let verified: u32 = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..bcrypt_concurrency())
            .map(|_| {
                scope.spawn(|| {
                    let mut count = 0;
                    while started.elapsed() < measure {
                        assert!(bcrypt::verify(SEED_PASSWORD, &hash).unwrap());
                        count += 1;
                    }
                    count
                })
            })
            .collect();
        threads.into_iter().map(|thread| thread.join().unwrap()).sum()
    });
    f64::from(verified) / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_storm_is_served_at_the_bcrypt_bound_and_refused_beyond_it_with_503() {
    let postgres = TestPostgres::create().await;
    let mut settings = authentication::Settings::from_env(&Env::from_pairs([("DSN", postgres.url.as_str())]))
        .expect("authentication settings");
    settings.http = HttpSettings::ephemeral();
    settings.bcrypt_cost = COST;
    settings.bcrypt_concurrency = bcrypt_concurrency();
    settings.bcrypt_queue = authentication::settings::QUEUE_PER_WORKER * bcrypt_concurrency();
    let auth = authentication::Application::build(settings).await.expect("authentication starts");
    let mut broker_settings = settings_with_downstreams_down();
    broker_settings.auth_url = format!("http://127.0.0.1:{}", auth.port());
    broker_settings.auth_timeout = broker::Settings::default().auth_timeout;
    tokio::spawn(auth.run_until_stopped());
    let broker = Arc::new(spawn_broker(broker_settings).await);
    let auth_timeout = broker.settings.auth_timeout;

    let bound_before = tokio::task::spawn_blocking(measured_bcrypt_bound).await.unwrap();

    let storm_over = Arc::new(AtomicBool::new(false));
    let pinger = tokio::spawn({
        let (broker, storm_over) = (broker.clone(), storm_over.clone());
        async move {
            let mut slowest = Duration::ZERO;
            let mut pings = 0;
            while !storm_over.load(Ordering::Acquire) {
                let started = Instant::now();
                let answer = broker.get("/ping").await;
                assert_eq!(answer.status, 200, "{answer:?}");
                slowest = slowest.max(started.elapsed());
                pings += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (pings, slowest)
        }
    });

    let started = Instant::now();
    let clients = (0..CLIENTS).map(|client| {
        let broker = broker.clone();
        // Clients arrive spread over the first second and come back after `Retry-After` plus a
        // spread of their own, as real clients with jitter do: 64 clients refused at the same
        // instant and back in lockstep a second later would leave the workers idle in between.
        let spread = Duration::from_secs(1) * client as u32 / CLIENTS as u32;
        tokio::spawn(async move {
            tokio::time::sleep(spread).await;
            let mut answers = Vec::new();
            while started.elapsed() < STORM {
                let sent = Instant::now();
                let answer = broker
                    .handle(&json!({"action": "auth", "auth": {"email": SEED_EMAIL, "password": SEED_PASSWORD}}))
                    .await;
                answers.push((answer.status, sent.elapsed(), answer.body["message"].clone(), started.elapsed()));
                if answer.status == 503 {
                    // A well-behaved client: back after `Retry-After` seconds.
                    let retry_after = answer.headers.get("retry-after").expect("a 503 says when to come back");
                    let seconds: u64 = retry_after.to_str().unwrap().parse().unwrap();
                    tokio::time::sleep(Duration::from_secs(seconds) + spread).await;
                }
            }
            answers
        })
    });
    let answers: Vec<_> =
        futures::future::join_all(clients).await.into_iter().flat_map(|answers| answers.unwrap()).collect();
    // The storm's length is until its last answer: a client that got a 503 near the end sleeps
    // out its `Retry-After` and then sends nothing, and that sleep is not the service's time.
    let elapsed = answers.iter().map(|(.., answered_at)| *answered_at).max().unwrap();
    storm_over.store(true, Ordering::Release);
    let (pings, slowest_ping) = pinger.await.unwrap();
    // Measured before and after the storm, averaged: the other work on a shared machine
    // changes its pace within seconds.
    let bound_after = tokio::task::spawn_blocking(measured_bcrypt_bound).await.unwrap();
    let bound = (bound_before + bound_after) / 2.0;

    let logins = answers.iter().filter(|(status, ..)| *status == 202).count();
    let goodput = logins as f64 / elapsed.as_secs_f64();
    let slowest = answers.iter().map(|(_, took, ..)| *took).max().unwrap();
    println!(
        "bound {bound:.2}/s ({bound_before:.2} before, {bound_after:.2} after), {logins} logins in {elapsed:?} = {goodput:.2}/s, {} answers, slowest {slowest:?}, \
         {pings} pings, slowest ping {slowest_ping:?}",
        answers.len()
    );
    for (status, took, message, _) in &answers {
        assert!(matches!(status, 202 | 503), "answered {status} ({message}) after {took:?}");
        assert!(*took < auth_timeout, "answered {status} after {took:?}, over the {auth_timeout:?} timeout");
        if *status == 503 {
            assert!(
                message.as_str().is_some_and(|m| m.starts_with("authentication service is unavailable")),
                "{message}"
            );
        }
    }
    assert!(goodput >= 0.9 * bound, "{goodput:.2} logins/s is under 90% of the bcrypt bound {bound:.2}/s");
    assert!(pings >= 10, "only {pings} pings in {elapsed:?}");
    assert!(slowest_ping < Duration::from_secs(1), "a ping took {slowest_ping:?} during the storm");
}
