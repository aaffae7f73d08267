use std::collections::HashSet;
use std::time::Duration;

use contract::event::LogEvent;
use contract::log::{Level, LogPayload};
use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use listener::{Application, Settings, StopHandle};
use mongodb::bson::Document;
use service_kit::amqp::{EventPublisher, Topology};
use service_kit::testing::{self, Answer, TestMongo, eventually, unique_name};
use tokio::task::JoinHandle;

/// How long a test waits for an effect (events stored, a reconnection) before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The event ids of stored documents.
pub fn event_ids(documents: &[Document]) -> Vec<String> {
    documents.iter().filter_map(|d| d.get_str("event_id").ok().map(str::to_owned)).collect()
}

/// Waits until exactly the events `expected` are stored, each once: fails if one is missing
/// after [`PATIENCE`], or as soon as one is stored twice or an unknown one appears.
pub async fn assert_stored_exactly_once(mongo: &TestMongo, expected: &[LogEvent]) {
    let wanted: HashSet<String> = expected.iter().map(|e| e.id.hyphenated().to_string()).collect();
    let documents = eventually(&format!("{} events stored", wanted.len()), PATIENCE, || async {
        let documents = mongo.stored_logs().await;
        let ids = event_ids(&documents);
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "an event was stored twice");
        assert!(ids.iter().all(|id| wanted.contains(id)), "an event nobody published was stored");
        (ids.len() == wanted.len()).then_some(documents)
    })
    .await;
    assert_eq!(documents.len(), expected.len(), "only the events, nothing else");
    for event in expected {
        let id = event.id.hyphenated().to_string();
        let document = documents.iter().find(|d| d.get_str("event_id") == Ok(id.as_str())).unwrap();
        assert_eq!(document.get_str("name").unwrap(), event.name);
        assert_eq!(document.get_str("data").unwrap(), event.data);
        assert_eq!(document.get_str("level").unwrap(), event.level.as_str());
    }
}

/// `n` events of every level, with recognisable names.
pub fn events(n: usize) -> Vec<LogEvent> {
    (0..n)
        .map(|i| {
            let payload = LogPayload {
                name: format!("event {i}").try_into().unwrap(),
                data: format!("data of event {i}").try_into().unwrap(),
                level: Some(Level::ALL[i % Level::ALL.len()]),
            };
            LogEvent::new(payload, None)
        })
        .collect()
}

/// The publishing side, as the broker has it, on a topology of the test's own.
pub struct TestBroker {
    pub topology: Topology,
    pub publisher: EventPublisher,
    /// A plain connection, to publish raw bodies and look into the queues.
    _connection: Connection,
    pub channel: Channel,
}

impl TestBroker {
    pub async fn new() -> Self {
        let topology = Topology::new(&unique_name("listener-ex"), &unique_name("listener-q"));
        let publisher = EventPublisher::with_topology(&testing::rabbit_url(), topology.clone(), Duration::from_secs(5))
            .expect("a publisher");
        let connection = Connection::connect(&testing::rabbit_url(), ConnectionProperties::default())
            .await
            .expect("RabbitMQ (run `project/infra.sh up`)");
        let channel = connection.create_channel().await.unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        topology.declare(&channel).await.unwrap();
        Self { topology, publisher, _connection: connection, channel }
    }

    /// Publishes every event concurrently; each is confirmed.
    pub async fn publish_all(&self, events: &[LogEvent]) {
        let results = futures::future::join_all(events.iter().map(|e| self.publisher.publish(e))).await;
        for result in results {
            result.expect("the broker confirms the event");
        }
    }

    /// Publishes a raw body, as a misbehaving publisher might.
    pub async fn publish_raw(&self, body: &[u8]) {
        self.publish_with(body, BasicProperties::default().with_delivery_mode(2)).await
    }

    /// Publishes a raw body with these properties (headers, say).
    pub async fn publish_with(&self, body: &[u8], properties: BasicProperties) {
        self.channel
            .basic_publish(
                self.topology.exchange.as_str().into(),
                "log.INFO".into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .unwrap()
            .await
            .expect("confirmed");
    }

    /// (ready messages, consumers) of a queue.
    pub async fn queue_state(&self, queue: &str) -> (u32, u32) {
        let queue = self
            .channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() },
                FieldTable::default(),
            )
            .await
            .expect("the queue exists");
        (queue.message_count(), queue.consumer_count())
    }

    /// Takes every message out of the dead-letter queue.
    pub async fn drain_dead_letters(&self) -> Vec<Vec<u8>> {
        let mut bodies = Vec::new();
        while let Some(message) = self
            .channel
            .basic_get(self.topology.dead_letter_queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            bodies.push(message.delivery.data);
        }
        bodies
    }

    /// Deletes the test's queues and exchanges.
    pub async fn cleanup(self) {
        self.topology.delete(&self.channel).await.expect("delete the test topology");
    }
}

/// A listener running in-process.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// Its AMQP connection's name, unique to the test: closing it disturbs nobody else.
    pub connection_name: String,
    pub http: reqwest::Client,
    stop: StopHandle,
    server: JoinHandle<anyhow::Result<()>>,
}

/// A listener on a free port, consuming `broker`'s queue and writing to the logger at `logger_addr`.
pub async fn spawn_app(broker: &TestBroker, logger_addr: &str) -> TestApp {
    spawn_app_with(broker, logger_addr, |_| {}).await
}

pub async fn spawn_app_with(broker: &TestBroker, logger_addr: &str, customise: impl FnOnce(&mut Settings)) -> TestApp {
    let connection_name = unique_name("listener");
    let mut settings = Settings::ephemeral(
        testing::rabbit_url(),
        logger_addr,
        broker.topology.exchange.clone(),
        broker.topology.queue.clone(),
    );
    settings.connection_name = connection_name;
    customise(&mut settings);
    spawn_listener(settings).await
}

/// A listener with exactly these settings (its connection named by them).
pub async fn spawn_listener(settings: Settings) -> TestApp {
    service_kit::telemetry::init_for_tests();
    let connection_name = settings.connection_name.clone();
    let app = Application::build(settings).await.expect("the listener builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let stop = app.stop_handle();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        connection_name,
        http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap(),
        stop,
        server,
    }
}

impl TestApp {
    pub async fn get(&self, path: &str) -> Answer {
        Answer::read(self.http.get(format!("{}{path}", self.address)).send().await.expect("GET")).await
    }

    /// `GET /ready`.
    pub async fn ready(&self) -> Answer {
        self.get("/ready").await
    }

    /// Waits until `/ready` answers 200.
    pub async fn wait_until_ready(&self) {
        eventually("the listener to be ready", PATIENCE, || async { (self.ready().await.status == 200).then_some(()) })
            .await;
    }

    /// Stops it: it finishes what it holds and closes its connection.
    pub async fn stop(self) {
        self.stop.stop().await;
        self.server.await.expect("the listener task ends").expect("the listener stops cleanly");
    }
}
