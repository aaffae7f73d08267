//! Events accepted while no listener has ever run are queued, not dropped.

use std::time::Duration;

use lapin::options::BasicGetOptions;
use lapin::{Connection, ConnectionProperties};
use serde_json::json;
use service_kit::amqp::Topology;
use service_kit::testing::{self, eventually};

use crate::helpers::{settings_with_downstreams_down, spawn_broker};

#[tokio::test]
async fn an_event_accepted_before_any_listener_started_waits_in_the_shared_queue() {
    let mut settings = settings_with_downstreams_down();
    settings.rabbit_url = testing::rabbit_url().into();
    let topology = Topology::new(&settings.exchange, &settings.queue);
    let app = spawn_broker(settings).await;

    let answer = app
        .handle(&json!({"action": "event", "log": {"name": "early", "data": "before any listener", "level": "ERROR"}}))
        .await;
    assert_eq!((answer.status, answer.message()), (202, "logged via RabbitMQ"), "{}", answer.body);

    let connection = Connection::connect(&testing::rabbit_url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let message = eventually("the event in the queue", Duration::from_secs(5), || async {
        channel.basic_get(topology.queue.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap()
    })
    .await;
    let event: contract::event::LogEvent = serde_json::from_slice(&message.delivery.data).expect("a LogEvent body");
    assert_eq!((event.name.as_str(), event.data.as_str()), ("early", "before any listener"));
    assert_eq!(message.delivery.routing_key.as_str(), "log.ERROR");
    topology.delete(&channel).await.unwrap();
}
