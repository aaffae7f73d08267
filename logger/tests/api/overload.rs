//! The store under strain: a connection cut mid-batch, the listener's bulk writes saturating
//! it, a store that hangs. MongoDB is reached through a [`Proxy`] of the test's own.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use contract::log::LogEntry;
use futures::future::join_all;
use logger::store::PING_TIMEOUT;
use service_kit::health::CHECK_TIMEOUT;
use service_kit::logger_client::LoggerRpc;
use service_kit::testing::eventually;
use service_kit::testing::proxy::{Chunk, Mode, Proxy, is_mongo_command, url_addr};
use uuid::Uuid;

use crate::helpers::{RPC_TIMEOUT, TestApp, entry, spawn_app, spawn_app_with};

/// A proxy the test controls in front of the test MongoDB server, each chunk as `decide` says.
async fn mongo_proxy(decide: impl Fn(&[u8]) -> Chunk + Send + Sync + 'static) -> Proxy {
    Proxy::start(url_addr(&service_kit::testing::mongo_url()), decide).await
}

/// A logger whose MongoDB is behind `proxy`.
async fn behind(proxy: &Proxy) -> TestApp {
    spawn_app_with(|s| s.mongo.url = proxy.mongo_url().into()).await
}

#[tokio::test]
async fn a_connection_cut_mid_batch_fails_no_caller_and_stores_no_entry_twice() {
    // Inserts still to cut. Each cut insert was stored by MongoDB; the logger only sees its
    // connection break.
    let cuts_left = Arc::new(AtomicUsize::new(0));
    let proxy = mongo_proxy({
        let cuts_left = cuts_left.clone();
        move |chunk| {
            let cut = is_mongo_command(chunk, "insert")
                && cuts_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            if cut { Chunk::CutAfterAnswer } else { Chunk::Pass }
        }
    })
    .await;
    let app = behind(&proxy).await;
    app.rpc.write_log(entry("warm-up", "")).await.expect("the store is reachable through the proxy");
    cuts_left.store(3, Ordering::SeqCst);

    let singles = join_all((0..150).map(|i| {
        let rpc = app.rpc.clone();
        async move { rpc.write_log(entry(&format!("single-{i}"), "")).await }
    }));
    let events = join_all((0..50).map(|i| {
        let rpc = app.rpc.clone();
        let event = LogEntry { event_id: Some(Uuid::new_v4()), ..entry(&format!("event-{i}"), "") };
        async move { rpc.write_log(event).await }
    }));
    let batches = join_all((0..4).map(|b| {
        let rpc = app.rpc.clone();
        async move { rpc.write_many((0..50).map(|i| entry(&format!("batch-{b}-{i}"), "")).collect()).await }
    }));
    let bodies: Vec<serde_json::Value> =
        (0..10).map(|i| serde_json::json!({"name": format!("http-{i}"), "data": ""})).collect();
    let over_http = join_all(bodies.iter().map(|body| app.post_log(body)));
    let (singles, events, batches, over_http) = tokio::join!(singles, events, batches, over_http);

    let mut ids: Vec<String> = singles.into_iter().chain(events).map(|r| r.expect("no caller sees an error")).collect();
    for batch in batches {
        ids.extend(batch.expect("no batch fails"));
    }
    for answer in over_http {
        assert_eq!(answer.status, 202, "{:?}", answer.body);
        ids.push(answer.body["data"]["id"].as_str().unwrap().to_owned());
    }
    println!("{} connections cut mid-insert, {} entries written", proxy.cut(), ids.len());
    assert!(proxy.cut() >= 1, "an insert's connection was cut after MongoDB stored it");
    let stored = app.stored().await;
    let stored_ids: Vec<String> = stored.iter().map(|d| d.get_object_id("_id").unwrap().to_hex()).collect();
    assert_eq!(stored_ids.len(), 1 + 150 + 50 + 4 * 50 + 10, "every entry is stored exactly once");
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "every caller got an id of its own");
    let stored_set: HashSet<&String> = stored_ids.iter().collect();
    assert!(unique.is_subset(&stored_set), "every id a caller was given is stored");
}

#[tokio::test]
async fn recent_and_interactive_writes_keep_answering_while_bulk_writes_saturate_the_store() {
    const BULK_CALLERS: usize = 8;
    const BULK_BATCH: usize = 200;
    const PROBES: usize = 10;
    let app = spawn_app().await;
    // The listener has a connection of its own, as in production.
    let listener = LoggerRpc::new(app.logger.rpc_addr.clone(), RPC_TIMEOUT);
    let stop = Arc::new(AtomicBool::new(false));
    let bulk_entries = Arc::new(AtomicUsize::new(0));
    let bulk = (0..BULK_CALLERS).map(|c| {
        let (listener, stop, bulk_entries) = (listener.clone(), stop.clone(), bulk_entries.clone());
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            let mut round = 0;
            while !stop.load(Ordering::SeqCst) {
                let batch = (0..BULK_BATCH).map(|i| entry(&format!("bulk-{c}-{round}-{i}"), "x")).collect();
                let started = Instant::now();
                // The queued class may be refused for lack of room; that is its share, not a failure.
                if let Ok(ids) = listener.write_many(batch).await {
                    bulk_entries.fetch_add(ids.len(), Ordering::SeqCst);
                }
                slowest = slowest.max(started.elapsed());
                round += 1;
            }
            slowest
        })
    });
    let bulk: Vec<_> = bulk.collect();
    eventually("the bulk writes to be under way", Duration::from_secs(20), || async {
        (bulk_entries.load(Ordering::SeqCst) >= BULK_CALLERS * BULK_BATCH).then_some(())
    })
    .await;

    let mut reads = Vec::new();
    let mut writes = Vec::new();
    for i in 0..PROBES {
        let started = Instant::now();
        app.rpc.recent(20, None, None).await.expect("recent answers within its timeout");
        reads.push(started.elapsed());
        let started = Instant::now();
        app.rpc.write_log(entry(&format!("interactive-{i}"), "")).await.expect("an interactive write answers");
        writes.push(started.elapsed());
    }
    let during = bulk_entries.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    let slowest_bulk = join_all(bulk).await.into_iter().map(Result::unwrap).max().unwrap();

    let (slowest_read, slowest_write) = (*reads.iter().max().unwrap(), *writes.iter().max().unwrap());
    println!(
        "{during} bulk entries stored by {BULK_CALLERS} callers; slowest recent {slowest_read:?}, \
         slowest interactive write {slowest_write:?}, slowest bulk call {slowest_bulk:?}"
    );
    assert!(slowest_read < RPC_TIMEOUT && slowest_write < RPC_TIMEOUT);
}

#[tokio::test]
async fn ready_names_a_store_that_does_not_answer_within_its_bound() {
    let proxy = mongo_proxy(|_| Chunk::Pass).await;
    let app = behind(&proxy).await;
    assert_eq!(app.get("/ready").await.status, 200);

    proxy.set(Mode::Hung);
    let started = Instant::now();
    let ready = app.get("/ready").await;
    let took = started.elapsed();

    assert_eq!(ready.status, 503, "{:?}", ready.body);
    let reason = ready.body["data"]["mongodb"].as_str().unwrap();
    assert!(reason.ends_with(&format!("MongoDB did not answer within {PING_TIMEOUT:?}")), "{}", ready.body);
    assert!(took < CHECK_TIMEOUT, "answered by the store's bound, not /ready's: {took:?}");

    proxy.set(Mode::Up);
    eventually("/ready once the store answers again", Duration::from_secs(20), || async {
        (app.get("/ready").await.status == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_write_that_waited_out_its_deadline_in_the_writers_queue_is_not_stored() {
    const HELD: Duration = Duration::from_millis(1500);
    const SHORT: Duration = Duration::from_millis(300);
    let holding = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicUsize::new(0));
    let proxy = mongo_proxy({
        let (holding, held) = (holding.clone(), held.clone());
        move |chunk| {
            if !holding.load(Ordering::SeqCst) || !is_mongo_command(chunk, "insert") {
                return Chunk::Pass;
            }
            held.fetch_add(1, Ordering::SeqCst);
            Chunk::Hold(HELD)
        }
    })
    .await;
    // One group at a time: the later calls queue behind the held one.
    let app = spawn_app_with(|s| {
        s.mongo.url = proxy.mongo_url().into();
        s.batch.concurrency = 1;
    })
    .await;
    app.rpc.write_log(entry("warm-up", "")).await.expect("the store is reachable through the proxy");

    holding.store(true, Ordering::SeqCst);
    let blocker = tokio::spawn({
        let rpc = app.rpc.clone();
        async move { rpc.write_log(entry("held", "")).await }
    });
    eventually("the first insert to be held", Duration::from_secs(5), || async {
        (held.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    holding.store(false, Ordering::SeqCst);
    let impatient = LoggerRpc::new(app.logger.rpc_addr.clone(), SHORT);
    let gone = impatient.write_log(entry("impatient", "")).await;
    assert!(gone.is_err(), "the short call's deadline passes while the writer is busy: {gone:?}");
    // Queued behind the held write too, so it goes in the same group as the expired one (whose
    // own deadline alone would already stop a lone insert).
    let patient = app.rpc.write_log(entry("after", "")).await;
    assert!(held.load(Ordering::SeqCst) == 1, "the patient write was queued while the first was held");
    blocker.await.unwrap().expect("the held write is stored once released");
    patient.expect("a write queued behind the hold is stored");

    let names: Vec<String> = app.stored().await.iter().map(|d| d.get_str("name").unwrap().to_owned()).collect();
    assert_eq!(names.iter().filter(|n| *n == "held").count(), 1, "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "after").count(), 1, "{names:?}");
    assert!(
        !names.iter().any(|n| n == "impatient"),
        "a write whose caller's deadline passed in the queue is not started: {names:?}"
    );
}
