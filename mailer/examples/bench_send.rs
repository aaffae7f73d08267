//! Throughput of `POST /send` against the local SMTP catcher, through the HTTP endpoint and the pool.
//!
//! ```text
//! cargo run --release -p mailer --example bench_send
//! BENCH_MAILS=1000 BENCH_CONCURRENCY=32 MAIL_POOL_SIZE=10 cargo run --release -p mailer --example bench_send
//! ```
//! The mailer runs in-process on a free port with the usual `MAIL_*` settings (maildev on
//! 127.0.0.1:1025 by default). All mails go to one fresh recipient; at the end the catcher is
//! asked how many arrived. maildev keeps every mail in memory and this does not delete them, so
//! prefer a maildev of your own, which also keeps the shared catcher's list short for the tests:
//!
//! ```text
//! .local/npm/node_modules/.bin/maildev --smtp 21025 --web 21080 --ip 127.0.0.1 &
//! MAIL_PORT=21025 TEST_MAILCATCHER_URL=http://127.0.0.1:21080 cargo run --release -p mailer --example bench_send
//! ```

use std::time::{Duration, Instant};

use futures::StreamExt;
use mailer::{Application, Settings};
use serde_json::json;
use service_kit::testing::MailCatcher;
use service_kit::{Env, HttpSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::process();
    let mails: usize = env.get("BENCH_MAILS").unwrap_or("1000").parse()?;
    let concurrency: usize = env.get("BENCH_CONCURRENCY").unwrap_or("32").parse()?;
    let mut settings = Settings::from_env(&env)?;
    settings.http = HttpSettings::ephemeral();
    let pool_size = settings.smtp.pool_size;

    let application = Application::build(settings).await?;
    let url = format!("http://127.0.0.1:{}/send", application.port());
    tokio::spawn(application.run_until_stopped());

    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let to = MailCatcher::unique_address();
    let send = |i: usize| {
        let (client, url, to) = (client.clone(), url.clone(), to.clone());
        async move {
            let body = json!({
                "to": to,
                "subject": format!("bench mail {i}"),
                "message": format!("Hello number {i}!\n\nThis is a benchmark mail with <b>markup</b> to escape."),
            });
            let started = Instant::now();
            let status = client.post(&url).json(&body).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
            (status, started.elapsed())
        }
    };

    // Warm-up: opens the pooled SMTP connections and the HTTP keep-alive connections.
    let warmup = concurrency;
    let warm: Vec<_> = futures::stream::iter(0..warmup).map(send).buffer_unordered(concurrency).collect().await;
    anyhow::ensure!(warm.iter().all(|(status, _)| *status == 202), "warm-up failed: is the catcher up?");

    let started = Instant::now();
    let mut results: Vec<(u16, Duration)> =
        futures::stream::iter(warmup..warmup + mails).map(send).buffer_unordered(concurrency).collect().await;
    let elapsed = started.elapsed();

    let failed = results.iter().filter(|(status, _)| *status != 202).count();
    results.sort_by_key(|(_, latency)| *latency);
    let percentile = |p: f64| results[((results.len() as f64 * p) as usize).min(results.len() - 1)].1;
    println!(
        "{mails} mails, {concurrency} concurrent callers, SMTP pool of {pool_size}: {:.2?} total, {:.0} mails/s, \
         {failed} failed",
        elapsed,
        mails as f64 / elapsed.as_secs_f64(),
    );
    println!(
        "latency p50 {:.1?}, p95 {:.1?}, p99 {:.1?}, max {:.1?}",
        percentile(0.50),
        percentile(0.95),
        percentile(0.99),
        results.last().map(|r| r.1).unwrap_or_default(),
    );

    let arrived = MailCatcher::new().mails_to(&to).await.len();
    println!("the catcher holds {arrived} of {} mails sent to {to}", warmup + mails);
    anyhow::ensure!(failed == 0 && arrived == warmup + mails, "not every mail arrived");
    Ok(())
}
