//! The store's own `insert_many` rate: the ceiling of the `log` and `event` paths, which both end
//! in the logger's grouped inserts. `project/bench/run.sh` runs it in the same run as the paths.
//!
//! ```text
//! cargo run --release -p logger --example insert_many -- measure 20000   # entries
//! cargo run --release -p logger --example insert_many -- drop bench_logs  # databases named bench*
//! ```
//!
//! `measure` writes the entries into `MONGO_DB` (default `bench_store`; dropped before and after)
//! through [`LogStore::insert_all`], the logger's own insert: its documents (with an event id, as
//! from the listener), its indexes, groups of `BATCH_MAX` with `BATCH_CONCURRENCY` at once, as the
//! logger is configured. The documents are built before the clock starts. It checks the stored
//! count and prints one line, `RESULT entries=N seconds=S inserts=K`.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use contract::log::{Level, LogEntry};
use futures::StreamExt;
use logger::Settings;
use logger::store::{LogDocument, LogStore};
use mongodb::bson::{Document, doc};
use service_kit::ExposeSecret;
use tokio::time::Instant;

/// Each outbound call's bound: an insert group, a count, a drop.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut settings = Settings::from_env(&service_kit::Env::process())?;
    // Never the service's own `logs` by default: this program drops what it writes to.
    if std::env::var("MONGO_DB").is_err() {
        settings.mongo.database = "bench_store".to_owned();
    }
    match args.first().map(String::as_str) {
        Some("measure") => {
            let entries = args.get(1).map_or(Ok(20_000), |n| n.parse()).context("ENTRIES is a count")?;
            measure(&settings, entries).await
        }
        Some("drop") => {
            for database in &args[1..] {
                drop_database(&settings, database).await?;
            }
            Ok(())
        }
        _ => bail!("usage: insert_many measure [ENTRIES] | insert_many drop DATABASE..."),
    }
}

async fn measure(settings: &Settings, entries: usize) -> anyhow::Result<()> {
    let database = settings.mongo.database.clone();
    drop_database(settings, &database).await?;
    let store = LogStore::new(&settings.mongo).await?;
    store.ensure_indexes().await.context("creating the indexes")?;
    let docs: Vec<LogDocument> = (0..entries)
        .map(|_| {
            LogDocument::new(LogEntry {
                name: "bench".to_owned(),
                data: "load test".to_owned(),
                level: Level::Info,
                event_id: Some(uuid::Uuid::new_v4()),
                sub: None,
                trace_id: None,
            })
        })
        .collect();
    let groups: Vec<&[LogDocument]> = docs.chunks(settings.batch.max_entries).collect();
    let inserts = groups.len();

    let started = Instant::now();
    let mut results = futures::stream::iter(groups)
        .map(|group| store.insert_all(group, Instant::now() + CALL_TIMEOUT))
        .buffer_unordered(settings.batch.concurrency);
    while let Some(group) = results.next().await {
        if let Some(error) = group.into_iter().find_map(Result::err) {
            bail!("an insert failed: {error}");
        }
    }
    let seconds = started.elapsed().as_secs_f64();

    let client = mongodb::Client::with_uri_str(settings.mongo.url.expose_secret()).await?;
    let logs = client.database(&database).collection::<Document>("logs");
    let count =
        tokio::time::timeout(CALL_TIMEOUT, logs.count_documents(doc! {})).await.context("counting timed out")??;
    ensure!(count == entries as u64, "{count} documents stored, expected {entries}");
    drop_database(settings, &database).await?;
    println!("RESULT entries={entries} seconds={seconds:.3} inserts={inserts}");
    Ok(())
}

/// Drops `database`, which must be one of the benchmark's (`bench*`), never a service's.
async fn drop_database(settings: &Settings, database: &str) -> anyhow::Result<()> {
    ensure!(database.starts_with("bench"), "refusing to drop {database:?}: only databases named bench* are dropped");
    let client = mongodb::Client::with_uri_str(settings.mongo.url.expose_secret()).await?;
    tokio::time::timeout(CALL_TIMEOUT, client.database(database).drop())
        .await
        .with_context(|| format!("dropping {database} timed out"))??;
    Ok(())
}
