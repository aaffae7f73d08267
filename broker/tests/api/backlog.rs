//! A backlog of events drained while the store holds back writes: overload is waited out, not
//! dead-lettered, and interactive reads keep their share. The real listener, logger and broker
//! run in-process; between the logger and MongoDB sits a proxy that holds every `insert` for
//! longer than the listener's write timeout for a while, and passes pings and reads at once, so
//! that the logger answers its `ping` throughout and slow writes cannot pass for an outage.
//! Meanwhile the broker's `logs` action is polled. One set-up, [`drain_a_backlog`], at two
//! scales: one for every test run, and the full scale, which costs minutes (README,
//! "Longer tests").

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use contract::event::LogEvent;
use contract::log::{Level, LogPayload};
use lapin::options::BasicGetOptions;
use logger::testing::TestLogger;
use serde_json::json;
use service_kit::amqp::{EventPublisher, Topology};
use service_kit::testing::proxy::{Chunk, Proxy, is_mongo_command, url_addr};
use service_kit::testing::{self, TestMongo, eventually, mongo_url, unique_name};

use crate::helpers::{settings_with_downstreams_down, spawn_broker};
use crate::stack::{delete_topology, listener_settings, spawn_listener, wait_until_ready};

/// One run's figures.
struct Scale {
    events: usize,
    /// How long one insert is held.
    held: Duration,
    /// For how long, from the first held insert, inserts are held.
    holding: Duration,
    /// The listener's bound on one write; every held insert outlasts it.
    write_timeout: Duration,
    /// The listener's attempts for an unexpected answer: were slow writes counted, few
    /// attempts would dead-letter within the run.
    max_attempts: u32,
    /// How often the `logs` action is asked.
    logs_every: Duration,
}

#[tokio::test]
async fn a_backlog_drained_while_the_store_holds_back_writes_stores_every_event_once_and_dead_letters_none() {
    // Scaled down to stay well under a minute; held below the logger's own MongoDB bound
    // (5 s), so the logger answers late rather than `Unavailable`.
    drain_a_backlog(Scale {
        events: 300,
        held: Duration::from_millis(2500),
        holding: Duration::from_secs(8),
        write_timeout: Duration::from_millis(1000),
        max_attempts: 3,
        logs_every: Duration::from_millis(100),
    })
    .await;
}

/// The scale with the listener's own settings: writes held 7 s (past the logger's
/// MongoDB bound too, so the logger also answers `Unavailable`) for 90 s. Takes 2–3 minutes.
#[tokio::test]
#[ignore = "minutes long: run it as README's \"Longer tests\" says"]
async fn full_scale_backlog_of_3000_events_with_writes_held_7s_for_90s() {
    let listener = listener::Settings::default();
    drain_a_backlog(Scale {
        events: 3000,
        held: Duration::from_secs(7),
        holding: Duration::from_secs(90),
        write_timeout: listener.logger_timeout,
        max_attempts: listener.max_attempts,
        logs_every: Duration::from_millis(250),
    })
    .await;
}

/// `n` valid events of every level.
fn events(n: usize) -> Vec<LogEvent> {
    (0..n)
        .map(|i| {
            LogEvent::new(
                LogPayload {
                    name: format!("backlog {i}").try_into().unwrap(),
                    data: format!("data of event {i}").try_into().unwrap(),
                    level: Some(Level::ALL[i % Level::ALL.len()]),
                },
                None,
            )
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn drain_a_backlog(scale: Scale) {
    service_kit::telemetry::init_for_tests();
    let started_holding = Arc::new(OnceLock::<Instant>::new());
    let held = Arc::new(AtomicU32::new(0));
    let proxy = Proxy::start(url_addr(&mongo_url()), {
        let (started_holding, held) = (started_holding.clone(), held.clone());
        let (hold, holding) = (scale.held, scale.holding);
        move |chunk| {
            if !is_mongo_command(chunk, "insert") || started_holding.get_or_init(Instant::now).elapsed() > holding {
                return Chunk::Pass;
            }
            held.fetch_add(1, Ordering::Relaxed);
            Chunk::Hold(hold)
        }
    })
    .await;
    let logger = TestLogger::spawn_with(TestMongo::new(), |settings| {
        settings.mongo.url = proxy.mongo_url().into();
    })
    .await;
    let mut broker_settings = settings_with_downstreams_down();
    broker_settings.logger_rpc_addr = logger.rpc_addr.clone();
    broker_settings.logger_timeout = broker::Settings::default().logger_timeout;
    let logs_timeout = broker_settings.logger_timeout;
    let broker = spawn_broker(broker_settings).await;

    // The backlog is queued before the listener starts.
    let mut listener = listener_settings(&logger.rpc_addr, &unique_name("backlog-ex"), &unique_name("backlog-q"));
    listener.logger_timeout = scale.write_timeout;
    listener.max_attempts = scale.max_attempts;
    let topology = listener.topology();
    let rabbit = lapin::Connection::connect(&testing::rabbit_url(), lapin::ConnectionProperties::default())
        .await
        .expect("RabbitMQ (run `project/infra.sh up`)");
    let channel = rabbit.create_channel().await.expect("a channel");
    topology.declare(&channel).await.expect("declare the test topology");
    let backlog = events(scale.events);
    publish_all(&topology, &backlog).await;

    let start = Instant::now();
    let (stop_listener, listener_ready) = spawn_listener(listener).await;
    wait_until_ready(&broker.http, &listener_ready).await;
    let draining = AtomicBool::new(true);
    let polls = async {
        let mut answers = Vec::new();
        while draining.load(Ordering::SeqCst) {
            let asked = Instant::now();
            let answer = broker.handle(&json!({"action": "logs", "logs": {"limit": 10}})).await;
            answers.push((answer.status, asked.elapsed(), answer.body["message"].clone()));
            tokio::time::sleep(scale.logs_every).await;
        }
        answers
    };
    let drain = async {
        assert_stored_exactly_once(&logger, &backlog, scale.holding + scale.held * 4 + Duration::from_secs(60)).await;
        draining.store(false, Ordering::SeqCst);
        start.elapsed()
    };
    let (drained, answers) = tokio::join!(drain, polls);
    let dead = dead_letters(&channel, &topology).await;

    let mut took: Vec<Duration> = answers.iter().map(|(_, took, _)| *took).collect();
    took.sort();
    let late: Vec<_> = answers.iter().filter(|(status, took, _)| *status != 200 || *took >= logs_timeout).collect();
    println!(
        "{} events drained in {drained:.1?} = {:.1} events/s, {} inserts held {:?} each for {:?}, {} dead letters; \
         `logs` {} answers, {} not 200 within {logs_timeout:?}, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        scale.events,
        scale.events as f64 / drained.as_secs_f64(),
        held.load(Ordering::Relaxed),
        scale.held,
        scale.holding,
        dead.len(),
        answers.len(),
        late.len(),
        percentile(&took, 0.5).as_secs_f64() * 1e3,
        percentile(&took, 0.99).as_secs_f64() * 1e3,
        took.last().unwrap().as_secs_f64() * 1e3,
    );
    assert!(held.load(Ordering::Relaxed) > 0, "the store held writes back");
    assert!(dead.is_empty(), "{} valid events dead-lettered, e.g. {:?}", dead.len(), String::from_utf8_lossy(&dead[0]));
    assert!(late.is_empty(), "`logs` answers during the drain, not 200 within {logs_timeout:?}: {late:?}");

    tokio::time::timeout(Duration::from_secs(20), stop_listener.stop()).await.expect("the listener stops");
    let _ = rabbit.close(0, "done".into()).await;
    delete_topology(&topology).await;
}

/// Publishes every event, as the broker does, each confirmed.
async fn publish_all(topology: &Topology, events: &[LogEvent]) {
    let publisher = EventPublisher::with_topology(&testing::rabbit_url(), topology.clone(), Duration::from_secs(30))
        .expect("a publisher");
    let results = futures::future::join_all(events.iter().map(|event| publisher.publish(event))).await;
    for result in results {
        result.expect("RabbitMQ confirms the event");
    }
}

/// Waits up to `patience` until exactly the events `expected` are stored; fails as soon as one
/// is stored twice or an unknown one appears.
async fn assert_stored_exactly_once(logger: &TestLogger, expected: &[LogEvent], patience: Duration) {
    let wanted: HashSet<String> = expected.iter().map(|event| event.id.hyphenated().to_string()).collect();
    eventually(&format!("{} events stored", wanted.len()), patience, || async {
        let documents = logger.stored_logs().await;
        let ids: Vec<&str> = documents.iter().filter_map(|d| d.get_str("event_id").ok()).collect();
        let distinct: HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), ids.len(), "an event was stored twice");
        assert!(ids.iter().all(|id| wanted.contains(*id)), "an event nobody published was stored");
        assert_eq!(ids.len(), documents.len(), "only the events are stored");
        (ids.len() == wanted.len()).then_some(())
    })
    .await;
}

/// Takes every message out of the dead-letter queue.
async fn dead_letters(channel: &lapin::Channel, topology: &Topology) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    while let Some(message) = channel
        .basic_get(topology.dead_letter_queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("read the dead-letter queue")
    {
        bodies.push(message.delivery.data);
    }
    bodies
}
