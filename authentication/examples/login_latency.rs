//! One login at bcrypt cost 12 over HTTP, next to one raw `bcrypt::verify` at cost 12.
//!
//! `cargo run --release -p authentication --example login_latency` (needs the local Postgres,
//! see `project/infra.sh up`; uses a throw-away database).

use std::time::{Duration, Instant};

use authentication::{Application, DatabaseSettings, Settings};
use service_kit::HttpSettings;
use service_kit::testing::TestPostgres;

const COST: u32 = 12;
const RUNS: usize = 30;

fn percentile(mut samples: Vec<Duration>, p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() - 1) as f64 * p).round() as usize;
    samples[index]
}

fn report(what: &str, samples: Vec<Duration>) {
    let (p50, p90) = (percentile(samples.clone(), 0.5), percentile(samples, 0.9));
    println!("{what:<40} p50 {:>7.1} ms   p90 {:>7.1} ms", p50.as_secs_f64() * 1e3, p90.as_secs_f64() * 1e3);
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let db = TestPostgres::create().await;
    let settings = Settings {
        http: HttpSettings::ephemeral(),
        database: DatabaseSettings::new(db.url.clone()),
        bcrypt_cost: COST,
        ..Settings::default()
    };
    let application = Application::build(settings).await?;
    let url = format!("http://127.0.0.1:{}/authenticate", application.port());
    tokio::spawn(application.run_until_stopped());

    let hash = bcrypt::hash("verysecret", COST)?;
    let raw_verify = || {
        let started = Instant::now();
        assert!(bcrypt::verify("verysecret", &hash).expect("a valid hash"));
        started.elapsed()
    };
    let http = reqwest::Client::new();
    let body = serde_json::json!({"email": "admin@example.com", "password": "verysecret"});
    let login = || async {
        let started = Instant::now();
        let response = http.post(&url).json(&body).send().await.expect("an answer");
        assert_eq!(response.status().as_u16(), 202);
        response.bytes().await.expect("a body");
        started.elapsed()
    };
    for _ in 0..3 {
        login().await; // warm the pool and the statement cache
    }
    // Interleaved, so that both see the same load on a shared machine.
    let (mut raw, mut over_http, mut overhead) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let (r, h) = (raw_verify(), login().await);
        raw.push(r);
        over_http.push(h);
        overhead.push((h.as_secs_f64() - r.as_secs_f64()) * 1e3);
    }

    let started = Instant::now();
    futures::future::join_all((0..RUNS).map(|_| login())).await;
    let throughput = RUNS as f64 / started.elapsed().as_secs_f64();

    println!("bcrypt cost {COST}, {RUNS} runs each, {} cores", std::thread::available_parallelism()?);
    report("raw bcrypt::verify", raw);
    report("POST /authenticate (one at a time)", over_http);
    overhead.sort_by(f64::total_cmp);
    println!("{:<40} p50 {:>7.1} ms", "login minus verify, pairwise", overhead[overhead.len() / 2]);
    println!("{RUNS} logins sent at once: {throughput:.1} logins/s");
    drop(db);
    Ok(())
}
