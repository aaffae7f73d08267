use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use logger::testing::TestLogger;
use service_kit::testing::{self, Answer, TestMongo, eventually};

use crate::helpers::{PATIENCE, TestBroker, assert_stored_exactly_once, events, spawn_app, spawn_app_with};

#[tokio::test]
async fn events_published_while_the_logger_is_down_are_stored_once_it_is_back_and_none_is_lost() {
    let logger = TestLogger::spawn(TestMongo::new()).await;
    let rpc_port = logger.rpc_port;
    let broker = TestBroker::new().await;
    // One attempt per event: were waiting for the logger counted, everything sent while it is
    // down would be dead-lettered at the first failure.
    let app = spawn_app_with(&broker, &logger.rpc_addr, |settings| settings.max_attempts = 1).await;
    let before = events(20);
    broker.publish_all(&before).await;
    assert_stored_exactly_once(&logger.mongo, &before).await;

    let mongo = logger.kill().await;
    let during = events(40);
    broker.publish_all(&during).await;
    // The listener takes them and holds them, unacked: none is dead-lettered or dropped.
    eventually("the listener to hold every event", PATIENCE, || async {
        (broker.queue_state(&broker.topology.queue).await.0 == 0).then_some(())
    })
    .await;
    let Answer { status, body, .. } = app.ready().await;
    assert_eq!(status, 503, "not ready without the logger: {body}");
    assert_ne!(body["data"]["logger"], "ok", "{body}");
    assert_eq!(mongo.stored_logs().await.len(), before.len(), "nothing stored while the logger is down");

    let logger = TestLogger::spawn_with(mongo, |settings| settings.rpc_port = rpc_port).await;

    let all: Vec<_> = before.iter().chain(&during).cloned().collect();
    assert_stored_exactly_once(&logger.mongo, &all).await;
    assert!(broker.drain_dead_letters().await.is_empty(), "nothing dead-lettered");
    app.wait_until_ready().await;
    app.stop().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn a_connection_closed_by_rabbitmq_mid_stream_loses_nothing_and_doubles_nothing() {
    let logger = TestLogger::spawn(TestMongo::new()).await;
    let broker = TestBroker::new().await;
    let app = spawn_app(&broker, &logger.rpc_addr).await;
    app.wait_until_ready().await;
    // Events flow at a steady pace before, during and after the cut, whatever its timing.
    let cut = AtomicBool::new(false);
    let publishing = async {
        let mut sent = Vec::new();
        let mut pace = tokio::time::interval(Duration::from_millis(10));
        let mut after_the_cut = 0;
        while after_the_cut < 20 {
            pace.tick().await;
            let batch = events(10);
            broker.publish_all(&batch).await;
            sent.extend(batch);
            if cut.load(Ordering::SeqCst) {
                after_the_cut += 1;
            }
        }
        sent
    };
    let cutting = async {
        eventually("some events stored", PATIENCE, || async { (logger.stored_logs().await.len() >= 50).then_some(()) })
            .await;
        let closed = testing::close_rabbit_connections(&app.connection_name).await;
        cut.store(true, Ordering::SeqCst);
        closed
    };
    let (events, closed) = tokio::join!(publishing, cutting);
    assert_eq!(closed, 1, "the listener's one connection");

    assert_stored_exactly_once(&logger.mongo, &events).await;
    assert!(broker.drain_dead_letters().await.is_empty(), "nothing dead-lettered");
    app.wait_until_ready().await;
    assert_eq!(broker.queue_state(&broker.topology.queue).await.1, 1, "consuming again, on a new connection");
    app.stop().await;
    broker.cleanup().await;
}
