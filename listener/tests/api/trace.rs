//! A delivery is handled in the trace of the request that published it: the entry stored from
//! it and the listener's log lines for it carry that trace id.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use logger::testing::TestLogger;
use service_kit::testing::{TestMongo, capture_logs, eventually};

use crate::helpers::{PATIENCE, TestBroker, events, spawn_app};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Persistent, with the `traceparent` header a publisher in the trace [`TRACE`] sends.
fn traced() -> BasicProperties {
    let mut headers = FieldTable::default();
    let traceparent = format!("00-{TRACE}-00f067aa0ba902b7-01");
    headers.insert("traceparent".into(), AMQPValue::LongString(traceparent.into()));
    BasicProperties::default().with_delivery_mode(2).with_headers(headers)
}

#[tokio::test]
async fn the_entry_and_the_log_lines_of_a_delivery_carry_its_publishers_trace_id() {
    let logs = capture_logs();
    let logger = TestLogger::spawn(TestMongo::new()).await;
    let broker = TestBroker::new().await;
    let app = spawn_app(&broker, &logger.rpc_addr).await;
    let [with, without] = <[_; 2]>::try_from(events(2)).unwrap();

    broker.publish_with(&serde_json::to_vec(&with).unwrap(), traced()).await;
    broker.publish_raw(&serde_json::to_vec(&without).unwrap()).await;
    broker.publish_with(b"not an event", traced()).await;

    let documents = eventually("both events stored", PATIENCE, || async {
        let documents = logger.mongo.stored_logs().await;
        (documents.len() == 2).then_some(documents)
    })
    .await;
    let stored = |event: &contract::event::LogEvent| {
        let id = event.id.hyphenated().to_string();
        documents.iter().find(|d| d.get_str("event_id") == Ok(id.as_str())).unwrap().clone()
    };
    assert_eq!(stored(&with).get_str("trace_id").unwrap(), TRACE, "the publisher's trace");
    let own = stored(&without).get_str("trace_id").expect("a trace of its own").to_owned();
    assert!(own.len() == 32 && own != TRACE, "{own}");

    // The bad body's refusal is logged in its delivery's span, in the publisher's trace.
    let line = eventually("the dead-letter line", PATIENCE, || async {
        logs.lines()
            .into_iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(&line).ok())
            .find(|line| line["message"] == "dead-lettering the message")
    })
    .await;
    assert_eq!(line["trace_id"], TRACE, "{line}");
    let spans: Vec<&str> = line["spans"].as_array().unwrap().iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(spans, ["amqp.delivery", "listener.delivery"], "{line}");
    assert_eq!(line["spans"][0]["routing_key"], "log.INFO", "{line}");
    app.stop().await;
    broker.cleanup().await;
}
