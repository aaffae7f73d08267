use std::collections::HashSet;

use logger::testing::TestLogger;
use serde_json::json;
use service_kit::testing::{TestMongo, eventually};

use crate::helpers::{PATIENCE, TestBroker, assert_stored_exactly_once, events, spawn_app};

#[tokio::test]
async fn malformed_messages_go_to_the_dead_letter_queue_and_the_others_are_stored() {
    let logger = TestLogger::spawn(TestMongo::new()).await;
    let broker = TestBroker::new().await;
    let app = spawn_app(&broker, &logger.rpc_addr).await;
    let valid = events(3);
    let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let malformed: Vec<(Vec<u8>, &str)> = vec![
        (b"not json at all".to_vec(), "plain text"),
        (b"{\"id\":".to_vec(), "truncated JSON"),
        (json!({"name": "no id", "data": "d", "level": "INFO", "created_at": "2024-05-01T12:00:00Z"}).to_string().into_bytes(), "no id"),
        (json!({"id": id, "data": "d", "level": "INFO", "created_at": "2024-05-01T12:00:00Z"}).to_string().into_bytes(), "no name"),
        (json!({"id": id, "name": "n", "data": "d", "level": "LOUD", "created_at": "2024-05-01T12:00:00Z"}).to_string().into_bytes(), "unknown level"),
        (json!({"id": id, "name": "", "data": "d", "level": "INFO", "created_at": "2024-05-01T12:00:00Z"}).to_string().into_bytes(), "empty name"),
        (json!({"id": id, "name": "n", "data": "x".repeat(64 * 1024 + 1), "level": "INFO", "created_at": "2024-05-01T12:00:00Z"}).to_string().into_bytes(), "data over the limit"),
    ];

    broker.publish_all(&valid[..1]).await;
    for (body, _) in &malformed {
        broker.publish_raw(body).await;
    }
    broker.publish_all(&valid[1..]).await;

    assert_stored_exactly_once(&logger.mongo, &valid).await;
    let dead_letter_queue = broker.topology.dead_letter_queue.clone();
    eventually("every malformed message dead-lettered", PATIENCE, || async {
        (broker.queue_state(&dead_letter_queue).await.0 as usize == malformed.len()).then_some(())
    })
    .await;
    let dead: HashSet<Vec<u8>> = broker.drain_dead_letters().await.into_iter().collect();
    for (body, why) in &malformed {
        assert!(dead.contains(body), "{why}: not in the dead-letter queue");
    }
    assert_eq!(broker.queue_state(&broker.topology.queue).await.0, 0, "none requeued");
    app.stop().await;
    broker.cleanup().await;
}
