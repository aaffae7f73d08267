//! RabbitMQ node loss: a three-node cluster of the test's own, quorum queues, the publisher and
//! the listener given every node's URL; the node both are connected to is stopped and started
//! again while 20,000 events are published. Costs more than a minute, so it is left out of the
//! normal runs (README, "Longer tests"):
//! `cargo nextest run -p listener --run-ignored only -E 'test(cluster)' --no-capture`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use listener::Settings;
use logger::testing::TestLogger;
use mongodb::bson::{Document, doc};
use service_kit::SecretString;
use service_kit::amqp::{EventPublisher, QueueType, Topology};
use service_kit::retry::{RetryPolicy, retry};
use service_kit::testing::{RabbitCluster, TestMongo, eventually, unique_name};

use crate::helpers::{events, spawn_listener};

const EVENTS: usize = 20_000;
/// Publishes in flight at once: as the broker's concurrent `event` actions would be.
const IN_FLIGHT: usize = 128;
/// Events published per second: paced, so that the node is back while publishing goes on (a
/// debug build confirmed ~1,600/s unpaced, faster than a node restarts: 8 to 20 s here).
const RATE: u32 = 500;
/// The node stops once this many events are confirmed...
const STOP_AFTER: usize = 4_000;
/// ...and starts again once this many more are confirmed while it is down.
const RESTART_AFTER: usize = 2_000;
/// Bound on the whole publishing phase, and then on the store catching up.
const PUBLISH_BOUND: Duration = Duration::from_secs(120);
const STORE_BOUND: Duration = Duration::from_secs(180);

#[tokio::test]
#[ignore = "starts a three-node RabbitMQ cluster and publishes 20k events: over a minute; see the README's Longer tests"]
async fn cluster_of_three_with_quorum_queues_loses_and_doubles_no_event_while_a_node_restarts() {
    let started = Instant::now();
    let mut cluster = RabbitCluster::start(3).await;
    let cluster_start = started.elapsed();
    let urls = cluster.urls();

    let topology =
        Topology::new(&unique_name("cluster-ex"), &unique_name("cluster-q")).with_queue_type(QueueType::Quorum);
    let nodes: Vec<SecretString> = urls.iter().map(|url| SecretString::from(url.as_str())).collect();
    let publisher_name = unique_name("cluster-publisher");
    let publisher = EventPublisher::with_nodes(&nodes, topology.clone(), Duration::from_secs(5))
        .unwrap()
        .with_connection_name(&publisher_name)
        .unwrap();
    publisher.ping().await.expect("the publisher connects and declares the quorum queues");

    let logger = TestLogger::spawn(TestMongo::new()).await;
    let mut settings =
        Settings::ephemeral(urls.join(","), &logger.rpc_addr, topology.exchange.clone(), topology.queue.clone());
    settings.queue_type = QueueType::Quorum;
    settings.connection_name = unique_name("cluster-listener");
    let app = spawn_listener(settings).await;
    app.wait_until_ready().await;

    // Both start at the first URL: stopping node 0 takes away the node both are connected to
    // (and the queue's leader, declared there).
    let victim = 0;
    assert_eq!(cluster.nodes_of_connection(&publisher_name).await, [victim], "the publisher's node");
    assert_eq!(cluster.nodes_of_connection(&app.connection_name).await, [victim], "the listener's node");

    let sent = events(EVENTS);
    let confirmed = AtomicUsize::new(0);
    let failed_attempts = AtomicUsize::new(0);
    let failures = Mutex::new(BTreeMap::<String, usize>::new());
    let confirm_times = Mutex::new(Vec::with_capacity(EVENTS));
    let publish_started = Instant::now();
    // Each event is published until confirmed, as a caller of the broker retries a 502/504 with
    // the same event id: a confirm lost with the node does not prove the event lost.
    let publishing = futures::stream::iter(sent.iter().enumerate())
        .map(|(i, event)| {
            let (publisher, confirmed, failed_attempts, failures, confirm_times) =
                (&publisher, &confirmed, &failed_attempts, &failures, &confirm_times);
            let release = tokio::time::Instant::from(publish_started) + Duration::from_secs(1) * i as u32 / RATE;
            async move {
                tokio::time::sleep_until(release).await;
                let policy = RetryPolicy::forever(Duration::from_millis(50), Duration::from_millis(500));
                retry("publish an event", policy, || async {
                    let result = publisher.publish(event).await;
                    if let Err(error) = &result {
                        failed_attempts.fetch_add(1, Ordering::Relaxed);
                        let kind: String = error.to_string().chars().take(90).collect();
                        *failures.lock().unwrap().entry(kind).or_default() += 1;
                    }
                    result
                })
                .await
                .expect("retried forever");
                confirm_times.lock().unwrap().push(publish_started.elapsed());
                confirmed.fetch_add(1, Ordering::Relaxed);
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<()>();
    let node_loss = async {
        let count = || confirmed.load(Ordering::Relaxed);
        eventually("events confirmed before the stop", PUBLISH_BOUND, || async {
            (count() >= STOP_AFTER).then_some(())
        })
        .await;
        let stopping = Instant::now();
        cluster.stop_node(victim).await;
        let stop_took = stopping.elapsed();
        println!("cluster: node {victim} stopped after {:.1?}", publish_started.elapsed());
        let stopped_at = count();
        eventually("events confirmed with the node down", PUBLISH_BOUND, || async {
            (count() >= (stopped_at + RESTART_AFTER).min(EVENTS)).then_some(())
        })
        .await;
        let restarting = Instant::now();
        cluster.start_node(victim).await;
        println!("cluster: node {victim} running again after {:.1?}", publish_started.elapsed());
        (stop_took, restarting.elapsed(), count())
    };
    // What a stall would need to be understood: the progress every few seconds.
    let progress = async {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            let (done, failed) = (confirmed.load(Ordering::Relaxed), failed_attempts.load(Ordering::Relaxed));
            let failures = failures.lock().unwrap().clone();
            println!(
                "cluster: {:.0?} {done} confirmed, {failed} failed attempts {failures:?}",
                publish_started.elapsed()
            );
        }
    };
    let ((), (stop_took, restart_took, confirmed_before_return)) = tokio::time::timeout(PUBLISH_BOUND, async {
        tokio::select! {
            done = async { tokio::join!(publishing, node_loss) } => done,
            () = progress => unreachable!("the progress report never ends"),
        }
    })
    .await
    .expect("every event confirmed in time");
    let publish_took = publish_started.elapsed();
    assert!(
        confirmed_before_return < EVENTS,
        "the node was back only after every event was confirmed: publish for longer (RATE)"
    );

    let mongo = logger.mongo.database().await;
    let logs = mongo.collection::<Document>("logs");
    let stored = eventually("every event stored", STORE_BOUND, || async {
        let total = logs.count_documents(doc! {}).await.unwrap();
        (total >= EVENTS as u64).then_some(total)
    })
    .await;
    let store_took = publish_started.elapsed();
    let distinct: HashSet<String> = logs
        .distinct("event_id", doc! {})
        .await
        .unwrap()
        .into_iter()
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect();
    let published: HashSet<String> = sent.iter().map(|e| e.id.hyphenated().to_string()).collect();
    assert_eq!(stored, EVENTS as u64, "every event stored once, nothing else");
    assert_eq!(distinct, published, "exactly the published events");

    // The queues as a node that stayed up sees them: all consumed, nothing dead-lettered.
    let connection = Connection::connect(&cluster.url(1), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let dead = channel.queue_declare(topology.dead_letter_queue.as_str().into(), passive, FieldTable::default()).await;
    assert_eq!(dead.unwrap().message_count(), 0, "nothing dead-lettered");

    let mut times = confirm_times.into_inner().unwrap();
    times.sort();
    let longest_gap = times.windows(2).map(|pair| pair[1] - pair[0]).max().unwrap_or_default();
    println!(
        "cluster: started in {cluster_start:.1?}; {EVENTS} events confirmed in {publish_took:.1?} ({:.0}/s), \
         all stored after {store_took:.1?}; node stop took {stop_took:.1?}, its restart {restart_took:.1?}; \
         longest pause between two confirms {longest_gap:.1?}; {} events confirmed after it was back; \
         {} failed publish attempts retried: {:?}",
        EVENTS as f64 / publish_took.as_secs_f64(),
        EVENTS - confirmed_before_return,
        failed_attempts.load(Ordering::Relaxed),
        failures.into_inner().unwrap(),
    );

    topology.delete(&channel).await.unwrap();
    app.stop().await;
    drop(cluster);
}
