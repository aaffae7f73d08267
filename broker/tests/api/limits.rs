//! Rate limits at the gateway: a burst over the per-client limit, 50 wrong passwords for one
//! account against the real authentication service, and which address counts as the client.

use std::time::Duration;

use authentication::migrations::{SEED_EMAIL, SEED_PASSWORD};
use broker::limits::LimitSettings;
use serde_json::{Value, json};
use service_kit::testing::{TestPostgres, eventually};
use service_kit::{Env, HttpSettings};

use crate::helpers::{Answer, TestApp, settings_with_downstreams_down, spawn_broker};

/// `POST /handle` as if relayed by a proxy that says the client is `forwarded_for`.
async fn handle_from(app: &TestApp, body: &Value, forwarded_for: Option<&str>) -> Answer {
    let mut request = app.http.post(format!("{}/handle", app.address)).json(body);
    if let Some(client) = forwarded_for {
        request = request.header("X-Forwarded-For", client);
    }
    Answer::read(request.send().await.expect("POST /handle")).await
}

/// A request the broker refuses (400) without any downstream: cheap, and counted all the same.
fn unknown_action() -> Value {
    json!({"action": "nothing"})
}

fn login(password: &str) -> Value {
    json!({"action": "auth", "auth": {"email": SEED_EMAIL, "password": password}})
}

/// A 429 in the envelope naming `limit`, with `Retry-After` (whole seconds, at least 1) and the
/// draft's two fields for `policy`, whose `t` is that same wait.
fn assert_limited(answer: &Answer, message_part: &str, policy: &str) {
    answer.assert_error(429, message_part, policy);
    let retry_after: u64 = answer.header("retry-after").expect("Retry-After").parse().expect("whole seconds");
    assert!(retry_after >= 1, "{retry_after}");
    assert!(answer.message().contains(&format!("retry in {retry_after} s")), "{}", answer.message());
    let declared = answer.header("ratelimit-policy").expect("RateLimit-Policy");
    assert!(declared.starts_with(&format!("{policy:?};q=")) && declared.contains(";w="), "{declared}");
    assert_eq!(answer.header("ratelimit"), Some(format!("{policy:?};r=0;t={retry_after}").as_str()));
}

#[tokio::test]
async fn a_burst_over_the_per_client_limit_gets_429_with_retry_after_and_the_ratelimit_fields() {
    let mut settings = settings_with_downstreams_down();
    settings.limits = LimitSettings { per_minute: 1, burst: 3, ..LimitSettings::default() };
    let broker = spawn_broker(settings).await;
    for n in 0..3 {
        assert_eq!(broker.handle(&unknown_action()).await.status, 400, "request {n} is within the burst");
    }
    let answer = broker.handle(&unknown_action()).await;
    assert_limited(&answer, "too many requests from your address", "client");
    assert_eq!(answer.header("ratelimit-policy"), Some(r#""client";q=3;w=180"#), "3 at once, 1 a minute");
    // One a minute: the wait is most of a minute.
    let retry_after: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((50..=60).contains(&retry_after), "{retry_after}");
    // Everything else on the broker still answers.
    assert_eq!(broker.get("/ping").await.status, 200);
}

#[tokio::test]
async fn x_forwarded_for_counts_only_when_the_peer_is_a_trusted_proxy() {
    let limits = LimitSettings { per_minute: 1, burst: 3, ..LimitSettings::default() };
    // No trusted proxy: the header is the client's own word, and every request is the peer's.
    let mut settings = settings_with_downstreams_down();
    settings.limits = limits.clone();
    let untrusted = spawn_broker(settings).await;
    let answers = [
        handle_from(&untrusted, &unknown_action(), Some("203.0.113.1")).await,
        handle_from(&untrusted, &unknown_action(), Some("203.0.113.2")).await,
        handle_from(&untrusted, &unknown_action(), Some("203.0.113.3")).await,
        handle_from(&untrusted, &unknown_action(), Some("203.0.113.4")).await,
    ];
    let statuses: Vec<u16> = answers.iter().map(|answer| answer.status).collect();
    assert_eq!(statuses, [400, 400, 400, 429], "four addresses claimed, one peer counted");

    // The loopback peer is a trusted proxy: each forwarded address is a client of its own.
    let mut settings = settings_with_downstreams_down();
    settings.limits = LimitSettings { trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()], ..limits };
    let trusted = spawn_broker(settings).await;
    for n in 1..=10 {
        let client = format!("203.0.113.{n}");
        assert_eq!(handle_from(&trusted, &unknown_action(), Some(&client)).await.status, 400, "{client}");
    }
    for n in 0..3 {
        assert_eq!(handle_from(&trusted, &unknown_action(), Some("198.51.100.1")).await.status, 400, "{n}");
    }
    let answer = handle_from(&trusted, &unknown_action(), Some("198.51.100.1")).await;
    assert_limited(&answer, "too many requests", "client");
}

/// A broker in front of the real authentication service (bcrypt cost 4), behind a trusted proxy
/// (the loopback peer), with a short failed-login penalty.
async fn broker_with_login_limits() -> (TestApp, TestPostgres) {
    let postgres = TestPostgres::create().await;
    let env = Env::from_pairs([("DSN", postgres.url.as_str()), ("BCRYPT_COST", "4")]);
    let mut settings = authentication::Settings::from_env(&env).expect("authentication settings");
    settings.http = HttpSettings::ephemeral();
    let auth = authentication::Application::build(settings).await.expect("authentication starts");
    let mut settings = settings_with_downstreams_down();
    settings.auth_url = format!("http://127.0.0.1:{}", auth.port());
    tokio::spawn(auth.run_until_stopped());
    settings.limits = LimitSettings {
        // Far from the per-client limit, which is not what this is about.
        per_minute: 60_000,
        burst: 10_000,
        failures_per_email_and_client: 3,
        // The first wait is long enough that the next wrong password surely comes within it;
        // the longest is short enough to wait for.
        penalty: Duration::from_secs(1),
        penalty_max: Duration::from_secs(2),
        forgotten_after: Duration::from_secs(60),
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..LimitSettings::default()
    };
    (spawn_broker(settings).await, postgres)
}

#[tokio::test]
async fn fifty_wrong_passwords_hit_the_login_limit_another_client_is_unaffected_and_the_limit_expires() {
    let (broker, _postgres) = broker_with_login_limits().await;
    let (attacker, other) = (Some("203.0.113.10"), Some("203.0.113.20"));

    let mut statuses = Vec::new();
    let mut first_refusal = None;
    for _ in 0..50 {
        let answer = handle_from(&broker, &login("not-the-password"), attacker).await;
        statuses.push(answer.status);
        if answer.status == 429 && first_refusal.is_none() {
            first_refusal = Some(answer);
        } else {
            assert!(matches!(answer.status, 401 | 429), "{}", answer.body);
        }
    }
    let first_429 = statuses.iter().position(|&status| status == 429).expect("the limit is hit");
    assert_eq!(&statuses[..first_429], [401, 401, 401], "three free failures, then the wait");
    let wrong = statuses.iter().filter(|&&status| status == 401).count();
    assert!(wrong < 10, "{wrong} of 50 wrong passwords reached bcrypt: {statuses:?}");
    let refusal = first_refusal.unwrap();
    assert_limited(&refusal, "too many failed logins for this email from your address", "login-email-client");
    assert_eq!(refusal.header("ratelimit-policy"), Some(r#""login-email-client";q=3;w=60"#));

    // Meanwhile the real user, from another address, signs in at once.
    let answer = handle_from(&broker, &login(SEED_PASSWORD), other).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    // Even the blocked client may still try other accounts (within its own allowance).
    let elsewhere = json!({"action": "auth", "auth": {"email": "nobody@example.com", "password": "x"}});
    assert_eq!(handle_from(&broker, &elsewhere, attacker).await.status, 401);

    // The wait passes (at most the 2 s maximum) and the right password works from the same client.
    let answer = eventually("the login penalty to expire", Duration::from_secs(10), || async {
        let answer = handle_from(&broker, &login(SEED_PASSWORD), attacker).await;
        (answer.status != 429).then_some(answer)
    })
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    // And it was forgiven: three wrong passwords are free again.
    for n in 0..3 {
        assert_eq!(handle_from(&broker, &login("still-wrong"), attacker).await.status, 401, "{n}");
    }
}
