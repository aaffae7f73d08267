use logger::testing::TestLogger;
use service_kit::testing::{TestMongo, eventually};

use crate::helpers::{PATIENCE, TestBroker, assert_stored_exactly_once, events, spawn_app};

#[tokio::test]
async fn every_published_event_is_stored_exactly_once() {
    let logger = TestLogger::spawn(TestMongo::new()).await;
    let broker = TestBroker::new().await;
    let app = spawn_app(&broker, &logger.rpc_addr).await;
    let events = events(300);

    broker.publish_all(&events).await;

    assert_stored_exactly_once(&logger.mongo, &events).await;
    let (ready, _) = broker.queue_state(&broker.topology.queue).await;
    assert_eq!(ready, 0, "nothing left in the queue");
    assert!(broker.drain_dead_letters().await.is_empty(), "nothing dead-lettered");
    app.stop().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn events_published_before_the_listener_started_are_stored_when_it_starts() {
    let logger = TestLogger::spawn(TestMongo::new()).await;
    let broker = TestBroker::new().await;
    let events = events(50);
    broker.publish_all(&events).await;
    assert_eq!(broker.queue_state(&broker.topology.queue).await.0, 50, "they wait in the queue");

    let app = spawn_app(&broker, &logger.rpc_addr).await;

    assert_stored_exactly_once(&logger.mongo, &events).await;
    app.stop().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn two_listeners_on_one_queue_share_the_events_and_store_each_once() {
    let logger = TestLogger::spawn(TestMongo::new()).await;
    let broker = TestBroker::new().await;
    let first = spawn_app(&broker, &logger.rpc_addr).await;
    let second = spawn_app(&broker, &logger.rpc_addr).await;
    first.wait_until_ready().await;
    second.wait_until_ready().await;
    assert_eq!(broker.queue_state(&broker.topology.queue).await.1, 2, "both consume the one queue");
    let events = events(400);

    broker.publish_all(&events).await;

    assert_stored_exactly_once(&logger.mongo, &events).await;
    first.stop().await;
    second.stop().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn an_event_delivered_twice_is_stored_once() {
    let logger = TestLogger::spawn(TestMongo::new()).await;
    let broker = TestBroker::new().await;
    let app = spawn_app(&broker, &logger.rpc_addr).await;
    let events = events(20);
    let twice: Vec<_> = events.iter().chain(&events).cloned().collect();

    broker.publish_all(&twice).await;

    assert_stored_exactly_once(&logger.mongo, &events).await;
    eventually("every copy consumed", PATIENCE, || async {
        (broker.queue_state(&broker.topology.queue).await.0 == 0).then_some(())
    })
    .await;
    assert_eq!(logger.stored_logs().await.len(), events.len(), "the copies stored nothing more");
    assert!(broker.drain_dead_letters().await.is_empty(), "nor were they dead-lettered");
    app.stop().await;
    broker.cleanup().await;
}
