//! A backlog drained while the store holds back writes: overload is waited out, not
//! dead-lettered. Between the logger and MongoDB sits a proxy that holds every `insert` for
//! longer than the listener's write timeout for a while, and passes pings and reads at once:
//! the logger answers its `ping` throughout, so slow writes cannot pass for an outage.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use logger::testing::TestLogger;
use service_kit::logger_client::LoggerRpc;
use service_kit::testing::proxy::{Chunk, Proxy, is_mongo_command, url_addr};
use service_kit::testing::{TestMongo, mongo_url};

use crate::helpers::{TestBroker, assert_stored_exactly_once, events, spawn_app_with};

/// The backlog.
const EVENTS: usize = 300;
/// The listener's bound on one write; every held insert outlasts it.
const WRITE_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long one insert is held (below the logger's own MongoDB bound, so the logger answers
/// late rather than `Unavailable`).
const HELD: Duration = Duration::from_millis(2500);
/// For how long, from the first held insert, inserts are held.
const HOLDING: Duration = Duration::from_secs(8);
/// The logger's reads, for an interactive caller.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

#[tokio::test]
async fn a_backlog_drained_while_the_store_holds_back_writes_stores_every_event_once_and_dead_letters_none() {
    let started_holding = Arc::new(OnceLock::<Instant>::new());
    let held = Arc::new(AtomicU32::new(0));
    let proxy = Proxy::start(url_addr(&mongo_url()), {
        let (started_holding, held) = (started_holding.clone(), held.clone());
        move |chunk| {
            if !is_mongo_command(chunk, "insert") || started_holding.get_or_init(Instant::now).elapsed() > HOLDING {
                return Chunk::Pass;
            }
            held.fetch_add(1, Ordering::Relaxed);
            Chunk::Hold(HELD)
        }
    })
    .await;
    let logger = TestLogger::spawn_with(TestMongo::new(), |settings| {
        settings.mongo.url = proxy.mongo_url().into();
    })
    .await;
    let broker = TestBroker::new().await;
    let backlog = events(EVENTS);
    broker.publish_all(&backlog).await;

    let start = Instant::now();
    // Few attempts, so that counting slow writes would dead-letter within the test's time.
    let app = spawn_app_with(&broker, &logger.rpc_addr, |settings| {
        settings.logger_timeout = WRITE_TIMEOUT;
        settings.max_attempts = 3;
    })
    .await;
    // Meanwhile an interactive reader asks for the latest entries, and is answered in time.
    let reading = AtomicBool::new(true);
    let reader = LoggerRpc::new(logger.rpc_addr.clone(), READ_TIMEOUT);
    let reads = async {
        let (mut answered, mut late) = (0, Vec::new());
        while reading.load(Ordering::SeqCst) {
            match reader.recent(10, None).await {
                Ok(_) => answered += 1,
                Err(error) => late.push(error.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (answered, late)
    };
    let drain = async {
        assert_stored_exactly_once(&logger.mongo, &backlog).await;
        let drained = start.elapsed();
        reading.store(false, Ordering::SeqCst);
        drained
    };
    let (drained, (answered, late)) = tokio::join!(drain, reads);
    let dead = broker.drain_dead_letters().await;
    println!(
        "{EVENTS} events drained in {drained:?}, {} inserts held {HELD:?}, {} dead letters, {answered} reads answered, {} late",
        held.load(Ordering::Relaxed),
        dead.len(),
        late.len(),
    );
    assert!(held.load(Ordering::Relaxed) > 0, "the store held writes back");
    assert!(dead.is_empty(), "{} valid events dead-lettered, e.g. {:?}", dead.len(), String::from_utf8_lossy(&dead[0]));
    assert!(late.is_empty() && answered > 0, "reads answered within {READ_TIMEOUT:?} during the drain: {late:?}");
    app.stop().await;
    broker.cleanup().await;
}
