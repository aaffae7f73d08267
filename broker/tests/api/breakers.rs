//! The circuit breakers: a downstream that keeps failing is not called for a while, and the
//! caller gets an immediate 503 naming it with `Retry-After` (a mail is queued at once instead,
//! while RabbitMQ takes it); after the open interval a trial goes through, and a recovered
//! downstream is used again without a broker restart.

use std::time::{Duration, Instant};

use authentication::migrations::{SEED_EMAIL, SEED_PASSWORD};
use broker::breaker::BreakerSettings;
use serde_json::{Value, json};
use service_kit::testing::proxy::{Mode, Proxy, url_addr};
use service_kit::testing::{self, MailCatcher, capture_logs, eventually, unique_name};

use crate::helpers::{Answer, TestApp, settings_with_downstreams_down, spawn_broker};
use crate::stack::spawn_stack_with;

fn breaker(failures: u32, open_ms: u64) -> BreakerSettings {
    BreakerSettings { failures, open_for: Duration::from_millis(open_ms), ..BreakerSettings::default() }
}

fn mail_to(to: &str) -> Value {
    json!({"action": "mail", "mail": {"to": to, "subject": "breaker", "message": "m"}})
}

/// `/ready`'s entry for `name`.
async fn ready_entry(app: &TestApp, name: &str) -> String {
    let answer = app.get("/ready").await;
    answer.body["data"][name].as_str().unwrap_or_else(|| panic!("no {name} in {}", answer.body)).to_owned()
}

/// Polls `/ready` until `name`'s entry contains `part`.
async fn wait_for_ready_entry(app: &TestApp, name: &str, part: &str, within: Duration) {
    eventually(&format!("/ready to show {name} {part:?}"), within, || async {
        ready_entry(app, name).await.contains(part).then_some(())
    })
    .await;
}

/// The answer of a request refused by an open circuit: 503, `Retry-After` in whole seconds
/// within the open interval, the envelope naming the service.
fn assert_circuit_open(answer: &Answer, service: &str, open_for: Duration, why: &str) {
    answer.assert_error(503, &format!("{service} unavailable: circuit open, retry in "), why);
    let retry_after: u64 = answer
        .header("retry-after")
        .unwrap_or_else(|| panic!("{why}: no Retry-After in {:?}", answer.headers))
        .parse()
        .expect("Retry-After in whole seconds");
    assert!((1..=open_for.as_secs().max(1) + 1).contains(&retry_after), "{why}: Retry-After {retry_after}");
    assert!(answer.message().ends_with(&format!("retry in {retry_after} s")), "{why}: {}", answer.message());
}

#[tokio::test]
async fn a_hung_mailer_opens_its_circuit_then_a_trial_closes_it_once_the_mailer_is_back() {
    let logs = capture_logs();
    let stack = spawn_stack_with(|_| {}).await;
    // A second broker, whose mailer is behind a proxy the test can hang and bring back, and
    // whose RabbitMQ is behind one it can take down.
    let proxy = Proxy::forward(url_addr(&stack.broker.settings.mailer_url)).await;
    let rabbit = Proxy::forward(url_addr(&testing::rabbit_url())).await;
    let timeout = Duration::from_millis(600);
    let open_for = Duration::from_millis(1500);
    let mut settings = stack.broker.settings.clone();
    settings.mailer_url = format!("http://{}", proxy.addr);
    settings.mailer_timeout = timeout;
    settings.breaker = breaker(3, open_for.as_millis() as u64);
    settings.rabbit_url = format!("amqp://guest:guest@{}/%2f", rabbit.addr).into();
    settings.rabbit_timeout = Duration::from_millis(500);
    let app = spawn_broker(settings).await;
    let to = MailCatcher::unique_address();
    assert_eq!(ready_entry(&app, "mailer").await, "ok");

    proxy.set(Mode::Hung);
    let mut slowest_failure = Duration::ZERO;
    for attempt in 0..3 {
        let started = Instant::now();
        app.handle(&mail_to(&to)).await.assert_error(504, "mailer did not answer within 600ms", &format!("{attempt}"));
        slowest_failure = slowest_failure.max(started.elapsed());
    }
    assert!(ready_entry(&app, "mailer").await.contains("circuit open, retry in "));

    // Open: the mailer is not called (no connection attempt, no timeout); each mail is queued
    // on RabbitMQ at once instead (the stack's mailer, which is up, sends them from there).
    // A call that reached the hung mailer could not answer before its timeout: each of these
    // answers in less proves the mailer was not called.
    let queued = 20;
    let mut slowest_queued = Duration::ZERO;
    for attempt in 0..queued {
        let started = Instant::now();
        let answer = app.handle(&mail_to(&to)).await;
        slowest_queued = slowest_queued.max(started.elapsed());
        assert_eq!((answer.status, answer.message()), (202, format!("Message queued for {to}").as_str()), "{attempt}");
        assert_eq!(answer.body["error"], json!(false));
    }
    assert!(
        slowest_queued < timeout,
        "a queued mail took {slowest_queued:?}, not less than the mailer's timeout ({timeout:?}; slowest failed call {slowest_failure:?})"
    );
    // RabbitMQ down too: neither sent nor queued, the mailer's open circuit is the answer.
    rabbit.set(Mode::Down);
    assert_circuit_open(&app.handle(&mail_to(&to)).await, "mailer", open_for, "RabbitMQ down too");
    rabbit.set(Mode::Up);
    // The other downstreams have breakers of their own.
    let name = unique_name("breaker-log");
    assert_eq!(app.handle(&json!({"action": "log", "log": {"name": name, "data": "d"}})).await.status, 202);

    // Half-open after the interval: the trial reaches the still hung mailer, fails, reopens.
    wait_for_ready_entry(&app, "mailer", "circuit half-open", open_for * 4).await;
    app.handle(&mail_to(&to)).await.assert_error(504, "mailer did not answer", "the trial");
    assert!(ready_entry(&app, "mailer").await.contains("circuit open"));

    // Back: the next trial succeeds, the circuit closes and mail flows as before.
    proxy.set(Mode::Up);
    wait_for_ready_entry(&app, "mailer", "circuit half-open", open_for * 4).await;
    let answer = app.handle(&mail_to(&to)).await;
    assert_eq!((answer.status, answer.message()), (202, format!("Message sent to {to}").as_str()), "the trial");
    assert_eq!(ready_entry(&app, "mailer").await, "ok");
    for _ in 0..3 {
        assert_eq!(app.handle(&mail_to(&to)).await.status, 202);
    }
    // The four sent directly, and the twenty queued while the circuit was open.
    eventually("the 24 mails in the catcher", Duration::from_secs(20), || async {
        (stack.mail.mails_to(&to).await.len() == 4 + queued).then_some(())
    })
    .await;

    // Each change logged once: opened twice (the threshold, the failed trial), closed once.
    let lines = logs.lines();
    let count = |part: &str| lines.iter().filter(|line| line.contains(part) && line.contains("mailer")).count();
    assert_eq!(count("circuit open: 3 consecutive failures"), 1, "{lines:#?}");
    assert_eq!(count("circuit open: a trial failed"), 1);
    assert_eq!(count("circuit half-open"), 2);
    assert_eq!(count("circuit closed"), 1);
    assert!(lines.iter().any(|line| line.contains("circuit open") && line.contains("WARN")), "warn on open");
    stack.cleanup().await;
}

#[tokio::test]
async fn an_invalid_credentials_storm_does_not_open_the_authentication_circuit() {
    let stack = spawn_stack_with(|settings| {
        settings.limits = broker::limits::LimitSettings::off();
        settings.breaker = breaker(2, 60_000);
    })
    .await;
    for attempt in 0..10 {
        let wrong = json!({"action": "auth", "auth": {"email": SEED_EMAIL, "password": format!("wrong-{attempt}")}});
        stack.broker.handle(&wrong).await.assert_error(401, "invalid credentials", &format!("{attempt}"));
    }
    assert_eq!(ready_entry(&stack.broker, "authentication").await, "ok");
    let right = json!({"action": "auth", "auth": {"email": SEED_EMAIL, "password": SEED_PASSWORD}});
    assert_eq!(stack.broker.handle(&right).await.status, 202);
    stack.cleanup().await;
}

#[tokio::test]
async fn each_downstream_has_its_own_circuit_which_opens_after_the_threshold() {
    let mut settings = settings_with_downstreams_down();
    let open_for = Duration::from_secs(30);
    settings.breaker = breaker(2, open_for.as_millis() as u64);
    let app = spawn_broker(settings).await;
    let requests = [
        (json!({"action": "auth", "auth": {"email": SEED_EMAIL, "password": SEED_PASSWORD}}), "authentication service"),
        // `event` before `log`: a `log` the logger cannot take falls back to RabbitMQ, and with
        // RabbitMQ down too that would count on RabbitMQ's circuit (the caller gets the logger's error).
        (json!({"action": "event", "log": {"name": "test", "data": "queued"}}), "RabbitMQ"),
        (json!({"action": "log", "log": {"name": "test", "data": "direct"}}), "logger"),
        (mail_to("you@example.com"), "mailer"),
    ];
    for (request, service) in &requests {
        for attempt in 0..2 {
            app.handle(request).await.assert_error(502, &format!("{service} is unreachable"), &format!("{attempt}"));
        }
        assert_circuit_open(&app.handle(request).await, service, open_for, service);
    }
    // `logs` goes to the logger too: its circuit is open already.
    assert_circuit_open(&app.handle(&json!({"action": "logs"})).await, "logger", open_for, "logs");
    let ready = app.get("/ready").await;
    assert_eq!(ready.status, 200, "shown, not gating");
    for name in ["authentication", "logger", "mailer", "rabbitmq"] {
        let entry = ready.body["data"][name].as_str().unwrap_or_default();
        assert!(entry.contains("(circuit open, retry in "), "{name}: {entry}");
    }
}
