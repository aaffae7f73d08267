//! Events as the Go original's broker publishes them (`contract::go_original::event`), through
//! the real RabbitMQ, the listener and the logger.

use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use listener::go_original::event_id;
use logger::testing::TestLogger;
use mongodb::bson::Document;
use service_kit::testing::{TestMongo, eventually, unique_name};

use crate::helpers::{PATIENCE, TestBroker, spawn_app};

/// Publishes `body` as the original's emitter does (transient, no message id, no timestamp),
/// with the given content type and, where a test wants one, a message id.
async fn publish_as_the_original(
    broker: &TestBroker,
    routing_key: &str,
    body: &str,
    content_type: Option<&str>,
    message_id: Option<&str>,
) {
    let mut properties = BasicProperties::default();
    if let Some(content_type) = content_type {
        properties = properties.with_content_type(content_type.into());
    }
    if let Some(message_id) = message_id {
        properties = properties.with_message_id(message_id.into());
    }
    broker
        .channel
        .basic_publish(
            broker.topology.exchange.as_str().into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            properties,
        )
        .await
        .expect("published")
        .await
        .expect("confirmed");
}

/// A body in the original's layout (Go's `json.MarshalIndent` with tabs).
fn original_body(name: &str, data: &str) -> String {
    format!("{{\n\t\"name\": \"{name}\",\n\t\"data\": \"{data}\"\n}}")
}

/// Waits until `n` documents are stored and every message has left the queue.
async fn stored_when_settled(broker: &TestBroker, logger: &TestLogger, n: usize) -> Vec<Document> {
    eventually(&format!("{n} entries stored, the queue empty"), PATIENCE, || async {
        let documents = logger.stored_logs().await;
        assert!(documents.len() <= n, "more stored than expected: {documents:?}");
        let queued = broker.queue_state(&broker.topology.queue).await.0;
        (documents.len() == n && queued == 0).then_some(documents)
    })
    .await
}

fn field<'a>(document: &'a Document, key: &str) -> &'a str {
    document.get_str(key).unwrap_or_else(|_| panic!("{key} in {document:?}"))
}

#[tokio::test]
async fn events_in_the_go_originals_format_are_stored_with_the_level_of_their_routing_key() {
    let logger = TestLogger::spawn(TestMongo::new()).await;
    let broker = TestBroker::new().await;
    let app = spawn_app(&broker, &logger.rpc_addr).await;
    let fixture = contract::go_original::event();
    assert_eq!((fixture.routing_key.as_str(), fixture.content_type.as_deref()), ("log.INFO", Some("text/plain")));
    let warning = original_body("event", "disk almost full");
    let error = original_body("event", "disk full");
    let untyped = original_body("event", "no content type");
    // The original's listener drops `auth` events; this one stores them (see `listener::go_original`).
    let auth = original_body("auth", "kept, not dropped");
    let messages = [
        (fixture.routing_key.as_str(), fixture.body.as_str(), Some("text/plain"), "INFO"),
        ("log.WARNING", warning.as_str(), Some("text/plain"), "WARNING"),
        ("log.ERROR", error.as_str(), Some("text/plain"), "ERROR"),
        ("log.INFO", untyped.as_str(), None, "INFO"),
        ("log.INFO", auth.as_str(), Some("text/plain"), "INFO"),
    ];

    for (key, body, content_type, _) in messages {
        publish_as_the_original(&broker, key, body, content_type, None).await;
    }

    let documents = stored_when_settled(&broker, &logger, messages.len()).await;
    for (key, body, _, level) in messages {
        let sent: serde_json::Value = serde_json::from_str(body).unwrap();
        let document = documents
            .iter()
            .find(|d| field(d, "data") == sent["data"])
            .unwrap_or_else(|| panic!("{body} on {key} is stored"));
        assert_eq!((field(document, "name"), field(document, "level")), (sent["name"].as_str().unwrap(), level));
        assert!(uuid::Uuid::parse_str(field(document, "event_id")).is_ok(), "it has an event id");
    }
    assert!(broker.drain_dead_letters().await.is_empty(), "nothing dead-lettered");
    app.stop().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn a_redelivered_event_in_the_go_originals_format_with_a_message_id_is_stored_once() {
    let logger = TestLogger::spawn(TestMongo::new()).await;
    let broker = TestBroker::new().await;
    let app = spawn_app(&broker, &logger.rpc_addr).await;
    let body = contract::go_original::event().body;
    let (first, second) = (unique_name("go-message"), unique_name("go-message"));

    // The same message twice (as a redelivery would bring it again), then another one.
    for message_id in [&first, &first, &second] {
        publish_as_the_original(&broker, "log.INFO", &body, Some("text/plain"), Some(message_id)).await;
    }

    let documents = stored_when_settled(&broker, &logger, 2).await;
    let mut ids: Vec<&str> = documents.iter().map(|d| field(d, "event_id")).collect();
    ids.sort_unstable();
    let mut expected = [event_id(Some(&first)).to_string(), event_id(Some(&second)).to_string()];
    expected.sort_unstable();
    assert_eq!(ids, expected, "one entry per message id, its id derived from the message id");
    app.stop().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn identical_events_in_the_go_originals_format_without_a_message_id_are_each_stored() {
    let logger = TestLogger::spawn(TestMongo::new()).await;
    let broker = TestBroker::new().await;
    let app = spawn_app(&broker, &logger.rpc_addr).await;
    let body = contract::go_original::event().body;

    // Two clicks on the original's "Test Event": the same bytes, two events.
    for _ in 0..2 {
        publish_as_the_original(&broker, "log.INFO", &body, Some("text/plain"), None).await;
    }

    let documents = stored_when_settled(&broker, &logger, 2).await;
    assert_ne!(field(&documents[0], "event_id"), field(&documents[1], "event_id"), "not merged");
    app.stop().await;
    broker.cleanup().await;
}
