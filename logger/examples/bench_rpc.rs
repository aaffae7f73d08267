//! Writes/s over RPC with and without grouping, in one run:
//!
//! ```text
//! cargo run --release -p logger --example bench_rpc            # 10,000 entries, 64 callers
//! BENCH_ENTRIES=20000 BENCH_CALLERS=128 cargo run --release -p logger --example bench_rpc
//! ```
//!
//! For each mode an in-process logger gets its own database on the MongoDB server of the tests
//! (`TEST_MONGO_URL`, default 127.0.0.1:27017); `BENCH_CALLERS` tasks share one `LoggerRpc`
//! (as the broker's handlers do) and call `write_log` until `BENCH_ENTRIES` writes are done.
//! The stored count is checked before the figure is printed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use contract::log::{Level, LogEntry};
use logger::settings::BatchSettings;
use logger::{Application, Settings};
use mongodb::bson::doc;
use service_kit::logger_client::LoggerRpc;
use service_kit::testing::TestMongo;

fn env_number(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = service_kit::telemetry::init("bench", &service_kit::Env::process());
    let entries = env_number("BENCH_ENTRIES", 10_000);
    let callers = env_number("BENCH_CALLERS", 64);
    // The grouping knobs come from the environment like the service's (BATCH_MAX, BATCH_WINDOW_MS,
    // BATCH_CONCURRENCY), defaults otherwise; the baseline is the same with BATCH_MAX=1.
    let grouped = Settings::from_env(&service_kit::Env::process())?.batch;
    let ungrouped = BatchSettings { max_entries: 1, ..grouped.clone() };
    println!("{entries} entries over RPC from {callers} concurrent callers sharing one client");
    println!("grouping: {grouped:?}");
    let mut figures = Vec::new();
    for (label, batch) in [("with grouping", grouped), ("without grouping (BATCH_MAX=1)", ungrouped)] {
        let run = run(entries, callers, batch.clone()).await.with_context(|| label.to_owned())?;
        println!(
            "{label:<32} {:>7.0} writes/s  ({entries} in {:.2?}; {} insert_many calls, {:.1} entries each)",
            run.rate,
            run.elapsed,
            run.inserts,
            entries as f64 / run.inserts as f64,
        );
        figures.push(run.rate);
    }
    println!("speed-up from grouping: {:.1}x", figures[0] / figures[1]);
    Ok(())
}

struct Run {
    rate: f64,
    elapsed: Duration,
    inserts: u64,
}

async fn run(entries: usize, callers: usize, batch: BatchSettings) -> anyhow::Result<Run> {
    let mongo = TestMongo::new();
    let mut settings = Settings::ephemeral(mongo.url.clone(), mongo.name.clone());
    settings.batch = batch;
    let app = Application::build(settings).await?;
    let rpc = LoggerRpc::new(format!("127.0.0.1:{}", app.rpc_port()), Duration::from_secs(30));
    let stop = app.stop_handle();
    let stats = app.write_stats();
    let server = tokio::spawn(app.run_until_stopped());
    rpc.ping().await.context("the logger answers")?;

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let (rpc, next) = (rpc.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < entries {
                    let entry = LogEntry {
                        name: format!("bench-{caller}"),
                        data: "x".repeat(100),
                        level: Level::Info,
                        event_id: None,
                        sub: None,
                        trace_id: None,
                    };
                    rpc.write_log(entry).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();

    let stored = mongo.client().await.database(&mongo.name).collection::<mongodb::bson::Document>("logs");
    let count = stored.count_documents(doc! {}).await?;
    ensure!(count == entries as u64, "{count} documents stored, expected {entries}");
    stop.stop().await;
    server.await??;
    Ok(Run { rate: entries as f64 / elapsed.as_secs_f64(), elapsed, inserts: stats.inserts() })
}
