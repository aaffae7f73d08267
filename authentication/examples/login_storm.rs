//! A login storm against the authentication service at production's bcrypt cost: N concurrent
//! clients for 20 s, each waiting as long as the broker would (its `auth` timeout, sending the
//! `Request-Timeout` the broker sends) and coming back after `Retry-After` when refused. Reports
//! successful logins/s, their share of the bcrypt bound measured in the same run (raw
//! `bcrypt::verify` on as many threads as the service has workers, before and after each storm),
//! answers by status (a caller that gave up counts as the broker's 504) and latency percentiles.
//!
//! `cargo run --release -p authentication --example login_storm -- 8 64` (client counts; needs
//! the local Postgres, see `project/infra.sh up`; uses a throw-away database).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use authentication::settings::QUEUE_PER_WORKER;
use authentication::{Application, DatabaseSettings, Settings};
use service_kit::HttpSettings;
use service_kit::deadline::{REQUEST_TIMEOUT, header_value};
use service_kit::testing::TestPostgres;

const COST: u32 = 12;
/// One worker, as in the measurement this replaces: on a 2-core box it leaves a core to the
/// service's HTTP side, PostgreSQL and the clients.
const WORKERS: usize = 1;
const STORM: Duration = Duration::from_secs(20);
/// The broker's default `AUTH_TIMEOUT_MS`: past it the broker answers 504.
const BROKER_AUTH_TIMEOUT: Duration = Duration::from_secs(5);
const EMAIL: &str = authentication::migrations::SEED_EMAIL;
const PASSWORD: &str = authentication::migrations::SEED_PASSWORD;
/// Stands for the broker's 504: the client stopped waiting.
const GAVE_UP: u16 = 504;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

/// Logins/s that `WORKERS` threads doing nothing but `bcrypt::verify` reach here and now.
fn bcrypt_bound(hash: &str) -> f64 {
    let measure = Duration::from_secs(3);
    let started = Instant::now();
    let verified: u32 = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..WORKERS)
            .map(|_| {
                scope.spawn(|| {
                    let mut count = 0;
                    while started.elapsed() < measure {
                        assert!(bcrypt::verify(PASSWORD, hash).expect("a valid hash"));
                        count += 1;
                    }
                    count
                })
            })
            .collect();
        threads.into_iter().map(|thread| thread.join().expect("a verifying thread")).sum()
    });
    f64::from(verified) / started.elapsed().as_secs_f64()
}

/// One answer: status, how long it took, when (from the storm's start) it came.
type Answer = (u16, Duration, Duration);

async fn storm(url: &str, clients: usize) -> Vec<Answer> {
    let http = reqwest::Client::builder().timeout(BROKER_AUTH_TIMEOUT).build().expect("an HTTP client");
    let body = serde_json::json!({"email": EMAIL, "password": PASSWORD});
    let started = Instant::now();
    let tasks = (0..clients).map(|client| {
        let (http, body, url) = (http.clone(), body.clone(), url.to_owned());
        // Spread arrivals over the first second and jittered returns, as the storm test does:
        // clients refused together and back in lockstep would leave the workers idle between.
        let spread = Duration::from_secs(1) * client as u32 / clients as u32;
        tokio::spawn(async move {
            tokio::time::sleep(spread).await;
            let mut answers = Vec::new();
            while started.elapsed() < STORM {
                let sent = Instant::now();
                let request =
                    http.post(&url).header(REQUEST_TIMEOUT, header_value(BROKER_AUTH_TIMEOUT * 9 / 10)).json(&body);
                let (status, retry_after) = match request.send().await {
                    Ok(response) => {
                        let retry_after = response
                            .headers()
                            .get("retry-after")
                            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
                        let status = response.status().as_u16();
                        // A body cut by the timeout is a caller that gave up, too.
                        match response.bytes().await {
                            Ok(_) => (status, retry_after),
                            Err(_) => (GAVE_UP, None),
                        }
                    }
                    Err(error) if error.is_timeout() => (GAVE_UP, None),
                    Err(error) => panic!("the service did not answer: {error}"),
                };
                answers.push((status, sent.elapsed(), started.elapsed()));
                if let Some(seconds) = retry_after.filter(|_| status == 503) {
                    tokio::time::sleep(Duration::from_secs(seconds) + spread).await;
                }
            }
            answers
        })
    });
    let mut answers = Vec::new();
    for task in futures::future::join_all(tasks).await {
        answers.extend(task.expect("a client task"));
    }
    answers
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let counts: Vec<usize> = std::env::args().skip(1).map(|arg| arg.parse()).collect::<Result<_, _>>()?;
    let counts = if counts.is_empty() { vec![8, 64] } else { counts };

    let db = TestPostgres::create().await;
    let settings = Settings {
        http: HttpSettings::ephemeral(),
        database: DatabaseSettings::new(db.url.clone()),
        bcrypt_cost: COST,
        bcrypt_concurrency: WORKERS,
        bcrypt_queue: QUEUE_PER_WORKER * WORKERS,
        ..Settings::default()
    };
    let application = Application::build(settings).await?;
    let url = format!("http://127.0.0.1:{}/authenticate", application.port());
    tokio::spawn(application.run_until_stopped());
    let hash = bcrypt::hash(PASSWORD, COST)?;

    println!(
        "bcrypt cost {COST}, {WORKERS} worker(s), queue {}, {STORM:?} per storm, client timeout {BROKER_AUTH_TIMEOUT:?}, {} cores",
        QUEUE_PER_WORKER * WORKERS,
        std::thread::available_parallelism()?
    );
    for clients in counts {
        let before = tokio::task::spawn_blocking({
            let hash = hash.clone();
            move || bcrypt_bound(&hash)
        })
        .await?;
        let answers = storm(&url, clients).await;
        let after = tokio::task::spawn_blocking({
            let hash = hash.clone();
            move || bcrypt_bound(&hash)
        })
        .await?;
        let bound = (before + after) / 2.0;
        // Until the last answer: a client refused near the end sleeps out its `Retry-After`.
        let elapsed = answers.iter().map(|(.., at)| *at).max().unwrap_or(STORM);
        let mut by_status = BTreeMap::<u16, usize>::new();
        for (status, ..) in &answers {
            *by_status.entry(*status).or_default() += 1;
        }
        let mut logins: Vec<Duration> =
            answers.iter().filter(|(status, ..)| *status == 202).map(|(_, took, _)| *took).collect();
        let rate = logins.len() as f64 / elapsed.as_secs_f64();
        let statuses: Vec<String> = by_status.iter().map(|(status, n)| format!("{n}×{status}")).collect();
        println!(
            "{clients:>3} clients: {rate:.2} logins/s = {:.0}% of the bound {bound:.2}/s ({before:.2} before, {after:.2} after); \
             answers {}; logins p50 {:.2} s, p99 {:.2} s",
            100.0 * rate / bound,
            statuses.join(" "),
            percentile(&mut logins, 0.5).as_secs_f64(),
            percentile(&mut logins, 0.99).as_secs_f64(),
        );
    }
    drop(db);
    Ok(())
}
