//! RabbitMQ, written once: the topologies both sides declare (events, and mail jobs), the
//! confirming publisher the broker uses, and the consuming loop ([`consumer`]) of the listener
//! and the mailer.
//!
//! Topology: a durable topic exchange (`logs_topic`), ONE durable named queue (`logs`) bound to
//! `log.*` that every listener replica consumes from (so replicas compete for events instead of
//! each storing a copy), and a dead-letter exchange (`<exchange>.dlx`, fanout) with its durable
//! queue (`<queue>.dead`) where rejected messages wait for a human. Declaring is idempotent, so
//! every process that needs the topology declares all of it. Mail jobs have the same shape under
//! their own names (`mail` exchange, `mail` queue bound to `mail.send`, see [`Topology::mail`]).
//!
//! Publisher: connections come from a `deadpool-lapin` pool and confirm-mode channels from a
//! second pool on top of it. A publish borrows a channel only to send, then waits for the
//! broker's confirm with the channel already back in the pool, so concurrent publishes pipeline
//! on few channels. A channel or connection that broke is discarded when it is next taken from
//! its pool (and at once by the publish that saw the failure); the next publish reconnects.

use std::time::Duration;

use contract::event::{BINDING_KEY, CONTENT_TYPE, LogEvent};
use contract::mail::MailJob;
use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, ConnectionProperties, ExchangeKind};
use serde::Serialize;

pub mod consumer;

/// `delivery_mode` of a message RabbitMQ writes to disk (survives a broker restart).
pub const PERSISTENT: u8 = 2;
/// Channels the publisher keeps open; a publish holds one only while sending.
pub const PUBLISH_CHANNELS: usize = 8;

/// Where events go and where the ones that cannot be stored end up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The durable topic exchange events are published to.
    pub exchange: String,
    /// The durable queue, bound to [`binding_key`](Self::binding_key), that consumer replicas share.
    pub queue: String,
    /// What the queue takes from the exchange: `log.*` for events, `mail.send` for mail jobs.
    pub binding_key: String,
    /// Where the queue sends rejected messages (fanout: the routing key is kept, not used).
    pub dead_letter_exchange: String,
    /// The durable queue behind the dead-letter exchange.
    pub dead_letter_queue: String,
}

impl Topology {
    /// The event topology of `exchange` and `queue`; the dead-letter names are derived from them.
    pub fn new(exchange: &str, queue: &str) -> Self {
        Self {
            exchange: exchange.to_owned(),
            queue: queue.to_owned(),
            binding_key: BINDING_KEY.to_owned(),
            dead_letter_exchange: format!("{exchange}.dlx"),
            dead_letter_queue: format!("{queue}.dead"),
        }
    }

    /// The mail-job topology of `exchange` and `queue`: the same shape, bound to
    /// [`contract::mail::ROUTING_KEY`].
    pub fn mail(exchange: &str, queue: &str) -> Self {
        Self { binding_key: contract::mail::ROUTING_KEY.to_owned(), ..Self::new(exchange, queue) }
    }

    /// Declares everything (idempotent): exchanges, queues, bindings, the dead-letter route.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable_exchange = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        let durable_queue = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                durable_exchange,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                self.dead_letter_exchange.as_str().into(),
                ExchangeKind::Fanout,
                durable_exchange,
                FieldTable::default(),
            )
            .await?;
        channel.queue_declare(self.dead_letter_queue.as_str().into(), durable_queue, FieldTable::default()).await?;
        channel
            .queue_bind(
                self.dead_letter_queue.as_str().into(),
                self.dead_letter_exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut arguments = FieldTable::default();
        arguments
            .insert("x-dead-letter-exchange".into(), AMQPValue::LongString(self.dead_letter_exchange.as_str().into()));
        channel.queue_declare(self.queue.as_str().into(), durable_queue, arguments).await?;
        channel
            .queue_bind(
                self.queue.as_str().into(),
                self.exchange.as_str().into(),
                self.binding_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    /// Deletes everything [`declare`](Self::declare) made, messages included: for tests that
    /// leave nothing behind on a shared broker.
    pub async fn delete(&self, channel: &Channel) -> Result<(), lapin::Error> {
        for queue in [&self.queue, &self.dead_letter_queue] {
            channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await?;
        }
        for exchange in [&self.exchange, &self.dead_letter_exchange] {
            channel.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default()).await?;
        }
        Ok(())
    }
}

/// Connection properties with a name, shown by `rabbitmqctl list_connections name client_properties`
/// and the management UI, so that an operator (or a test) can tell connections apart.
pub fn connection_properties(connection_name: &str) -> ConnectionProperties {
    ConnectionProperties::default().with_connection_name(connection_name.into())
}

/// True when `error` means the connection (or the channel under it) is gone, rather than the
/// broker refusing one operation.
fn is_connection_error(error: &lapin::Error) -> bool {
    use lapin::ErrorKind;
    match error.kind() {
        ErrorKind::IOError(_)
        | ErrorKind::RuntimeShutdownError(_)
        | ErrorKind::InvalidConnectionState(_)
        | ErrorKind::InvalidChannelState(..)
        | ErrorKind::InvalidChannel(_)
        | ErrorKind::MissingHeartbeatError => true,
        _ => error.is_amqp_hard_error(),
    }
}

/// Why a publish did not get the broker's confirm.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No connection to RabbitMQ, or it broke during the publish.
    #[error("RabbitMQ unreachable: {0}")]
    Unreachable(String),
    /// No confirm within the publisher's timeout (connecting included).
    #[error("RabbitMQ did not confirm within {0:?}")]
    Timeout(Duration),
    /// The broker refused the message (basic.nack): it was not stored.
    #[error("RabbitMQ refused the message (nack)")]
    Nacked,
    /// Any other AMQP failure: an operation refused, or a message no queue would take.
    #[error("AMQP error: {0}")]
    Amqp(String),
}

impl From<lapin::Error> for PublishError {
    fn from(error: lapin::Error) -> Self {
        if is_connection_error(&error) {
            PublishError::Unreachable(error.to_string())
        } else {
            PublishError::Amqp(error.to_string())
        }
    }
}

impl From<managed::PoolError<PublishError>> for PublishError {
    fn from(error: managed::PoolError<PublishError>) -> Self {
        match error {
            managed::PoolError::Backend(error) => error,
            other => PublishError::Unreachable(other.to_string()),
        }
    }
}

/// Makes confirm-mode channels on connections from the `deadpool-lapin` pool.
struct ChannelManager {
    connections: deadpool_lapin::Pool,
    /// Declared by every new channel: events published before any listener ever ran are
    /// queued, not dropped.
    topology: Topology,
}

impl managed::Manager for ChannelManager {
    type Type = Channel;
    type Error = PublishError;

    async fn create(&self) -> Result<Channel, PublishError> {
        let connection = self.connections.get().await.map_err(|e| PublishError::Unreachable(e.to_string()))?;
        let channel = connection.create_channel().await?;
        // The channel keeps the connection open; the pooled connection goes back for the next channel.
        drop(connection);
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        self.topology.declare(&channel).await?;
        tracing::debug!(channel = channel.id(), "publisher channel open");
        Ok(channel)
    }

    async fn recycle(&self, channel: &mut Channel, _: &Metrics) -> RecycleResult<PublishError> {
        if channel.status().connected() { Ok(()) } else { Err(RecycleError::message("the channel is closed")) }
    }
}

/// Publishes events with publisher confirms; cheap to clone, connects on first use.
#[derive(Clone)]
pub struct EventPublisher {
    /// Confirm-mode channels over pooled connections.
    channels: managed::Pool<ChannelManager>,
    /// The broker, kept to rebuild the pools with another connection name.
    amqp_url: String,
    /// What each new channel declares; its exchange is where events go.
    topology: Topology,
    /// Bound on one publish, from taking a channel (and connecting) to the confirm.
    timeout: Duration,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher")
            .field("exchange", &self.topology.exchange)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The connection name a publisher uses unless told otherwise.
pub const DEFAULT_PUBLISHER_NAME: &str = "event-publisher";

impl EventPublisher {
    /// A publisher that declares the whole `topology` on first use and publishes as mandatory: an
    /// event is queued even if no listener ever ran, and one that no queue would take (the
    /// binding was removed) fails with [`PublishError::Amqp`] instead of vanishing. Nothing
    /// connects until the first publish. Call it inside a tokio runtime (the connection pool
    /// binds to it).
    pub fn with_topology(amqp_url: &str, topology: Topology, timeout: Duration) -> Result<Self, PublishError> {
        amqp_url.parse::<lapin::uri::AMQPUri>().map_err(|e| PublishError::Amqp(format!("invalid AMQP URL: {e}")))?;
        let channels = Self::pools(amqp_url, topology.clone(), DEFAULT_PUBLISHER_NAME)?;
        Ok(Self { channels, amqp_url: amqp_url.to_owned(), topology, timeout })
    }

    /// The same publisher under another connection name (default [`DEFAULT_PUBLISHER_NAME`]);
    /// call it before the first publish.
    pub fn with_connection_name(self, connection_name: &str) -> Result<Self, PublishError> {
        let channels = Self::pools(&self.amqp_url, self.topology.clone(), connection_name)?;
        Ok(Self { channels, ..self })
    }

    /// A pool of one connection and a pool of channels on it; nothing connects yet.
    fn pools(
        amqp_url: &str,
        topology: Topology,
        connection_name: &str,
    ) -> Result<managed::Pool<ChannelManager>, PublishError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(PublishError::Amqp("the publisher must be created inside a tokio runtime".into()));
        }
        let connection_name = connection_name.to_owned();
        let connections =
            deadpool_lapin::Config { url: Some(amqp_url.to_owned()), pool: Some(deadpool_lapin::PoolConfig::new(1)) }
                .create_pool(move || connection_properties(&connection_name), deadpool_lapin::Runtime::Tokio1)
                .map_err(|e| PublishError::Amqp(e.to_string()))?;
        managed::Pool::builder(ChannelManager { connections, topology })
            .max_size(PUBLISH_CHANNELS)
            .build()
            .map_err(|e| PublishError::Amqp(e.to_string()))
    }

    /// Publishes `event` (persistent, JSON, routing key `log.<LEVEL>`) and returns once RabbitMQ
    /// confirmed it, within the timeout. A timeout or a connection lost after sending does not
    /// prove the event lost (RabbitMQ may still have queued it); publishing it again is safe,
    /// because the event keeps its id and the logger stores an id once.
    #[tracing::instrument(name = "amqp.publish", skip(self, event), fields(exchange = %self.topology.exchange, event_id = %event.id))]
    pub async fn publish(&self, event: &LogEvent) -> Result<(), PublishError> {
        let timestamp = u64::try_from(event.created_at.timestamp()).unwrap_or_default();
        self.publish_json(&event.routing_key(), &event.id.to_string(), timestamp, event).await
    }

    /// Publishes a mail `job` (persistent, JSON, routing key `mail.send`, its id as the message
    /// id) on a publisher made with a [`Topology::mail`], and returns once RabbitMQ confirmed it.
    #[tracing::instrument(name = "amqp.publish_mail", skip(self, job), fields(exchange = %self.topology.exchange, job_id = %job.id))]
    pub async fn publish_mail(&self, job: &MailJob) -> Result<(), PublishError> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.publish_json(contract::mail::ROUTING_KEY, &job.id.to_string(), now.as_secs(), job).await
    }

    /// Publishes `body` as persistent JSON under `routing_key` and `message_id`, within the
    /// timeout, and waits for RabbitMQ's confirm: the one way every message type is sent.
    async fn publish_json<T: Serialize>(
        &self,
        routing_key: &str,
        message_id: &str,
        timestamp: u64,
        body: &T,
    ) -> Result<(), PublishError> {
        let body =
            serde_json::to_vec(body).map_err(|e| PublishError::Amqp(format!("cannot encode the message: {e}")))?;
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type(CONTENT_TYPE.into())
            .with_message_id(message_id.into())
            .with_timestamp(timestamp);
        match tokio::time::timeout(self.timeout, self.publish_confirmed(routing_key.into(), &body, properties)).await {
            Ok(result) => result,
            Err(_) => Err(PublishError::Timeout(self.timeout)),
        }
    }

    async fn publish_confirmed(
        &self,
        routing_key: ShortString,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let channel = self.channels.get().await?;
        let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        let exchange = self.topology.exchange.as_str();
        let sent = channel.basic_publish(exchange.into(), routing_key.clone(), options, body, properties).await;
        let confirm = match sent {
            Ok(confirm) => confirm,
            Err(error) => {
                // A channel that failed a publish is not handed out again.
                let _ = Object::take(channel);
                return Err(error.into());
            }
        };
        // The channel goes back to the pool now: other publishes can use it while we wait.
        drop(channel);
        match confirm.await? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) => Err(PublishError::Amqp(format!(
                "no queue is bound to {routing_key} on {}: the broker returned the message ({})",
                self.topology.exchange, returned.reply_text
            ))),
            Confirmation::Nack(_) => Err(PublishError::Nacked),
            Confirmation::NotRequested => Err(PublishError::Amqp("the channel is not in confirm mode".into())),
        }
    }

    /// Succeeds when a confirm-mode channel to RabbitMQ is open (connecting if needed).
    pub async fn ping(&self) -> Result<(), PublishError> {
        let check = async {
            let channel = self.channels.get().await?;
            if channel.status().connected() {
                Ok(())
            } else {
                let _ = Object::take(channel);
                Err(PublishError::Unreachable("the channel is closed".into()))
            }
        };
        match tokio::time::timeout(self.timeout, check).await {
            Ok(result) => result,
            Err(_) => Err(PublishError::Timeout(self.timeout)),
        }
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::testing;
    use contract::log::{Level, LogPayload};
    use lapin::options::BasicGetOptions;
    use std::time::Instant;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn event(name: &str, level: Level) -> LogEvent {
        LogEvent::new(
            LogPayload { name: name.parse().unwrap(), data: "some data".parse().unwrap(), level: Some(level) },
            None,
        )
    }

    /// A unique topology, and a plain channel to inspect it.
    async fn fixture() -> (Topology, lapin::Connection, Channel) {
        let topology = Topology::new(&testing::unique_name("ex"), &testing::unique_name("q"));
        let connection = lapin::Connection::connect(&testing::rabbit_url(), ConnectionProperties::default())
            .await
            .expect("RabbitMQ (run `project/infra.sh up`)");
        let channel = connection.create_channel().await.unwrap();
        (topology, connection, channel)
    }

    async fn get(channel: &Channel, queue: &str) -> Option<lapin::message::BasicGetMessage> {
        channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap()
    }

    #[tokio::test]
    async fn a_confirmed_event_waits_in_the_queue_as_persistent_json_even_before_any_consumer_ran() {
        let (topology, _connection, channel) = fixture().await;
        let publisher = EventPublisher::with_topology(&testing::rabbit_url(), topology.clone(), TIMEOUT).unwrap();
        let sent = event("queued", Level::Warning);
        publisher.publish(&sent).await.expect("confirmed");

        let message = get(&channel, &topology.queue).await.expect("the event is in the queue");
        let delivery = message.delivery;
        assert_eq!(delivery.routing_key.as_str(), "log.WARNING");
        assert_eq!(delivery.properties.delivery_mode(), &Some(PERSISTENT));
        assert_eq!(delivery.properties.content_type().as_ref().map(ShortString::as_str), Some(CONTENT_TYPE));
        let received: LogEvent = serde_json::from_slice(&delivery.data).unwrap();
        assert_eq!(received, sent);
        topology.delete(&channel).await.unwrap();
    }

    #[tokio::test]
    async fn concurrent_publishes_are_all_confirmed_and_all_queued() {
        let (topology, _connection, channel) = fixture().await;
        let publisher = EventPublisher::with_topology(&testing::rabbit_url(), topology.clone(), TIMEOUT).unwrap();
        let events: Vec<LogEvent> = (0..200).map(|i| event(&format!("e{i}"), Level::ALL[i % 3])).collect();
        let results = futures::future::join_all(events.iter().map(|e| publisher.publish(e))).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let queue = channel
            .queue_declare(
                topology.queue.as_str().into(),
                QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        assert_eq!(queue.message_count(), 200);
        topology.delete(&channel).await.unwrap();
    }

    #[tokio::test]
    async fn an_event_no_queue_would_take_is_an_error_not_a_silent_loss() {
        let (topology, _connection, channel) = fixture().await;
        let publisher = EventPublisher::with_topology(&testing::rabbit_url(), topology.clone(), TIMEOUT).unwrap();
        publisher.ping().await.expect("declares the topology");
        channel.queue_delete(topology.queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();

        let error = publisher.publish(&event("lost", Level::Info)).await.unwrap_err();
        assert!(matches!(&error, PublishError::Amqp(m) if m.contains("no queue is bound")), "{error:?}");
        topology.delete(&channel).await.unwrap();
    }

    #[tokio::test]
    async fn the_publisher_reconnects_after_the_broker_closed_its_connection() {
        let (topology, _connection, channel) = fixture().await;
        let name = testing::unique_name("publisher");
        let publisher = EventPublisher::with_topology(&testing::rabbit_url(), topology.clone(), TIMEOUT)
            .unwrap()
            .with_connection_name(&name)
            .unwrap();
        publisher.publish(&event("before", Level::Info)).await.unwrap();
        assert_eq!(testing::close_rabbit_connections(&name).await, 1, "one connection named {name}");

        // The first publish after the close may still see the dying connection; a later one must
        // succeed on a new connection without any help.
        let after = event("after", Level::Info);
        testing::eventually("a publish on a new connection", Duration::from_secs(10), || async {
            publisher.publish(&after).await.ok()
        })
        .await;
        let names: Vec<String> = [get(&channel, &topology.queue).await, get(&channel, &topology.queue).await]
            .into_iter()
            .flatten()
            .map(|m| serde_json::from_slice::<LogEvent>(&m.delivery.data).unwrap().name)
            .collect();
        assert_eq!(names, ["before", "after"]);
        topology.delete(&channel).await.unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_broker_fails_fast_and_creating_the_publisher_does_not_connect() {
        let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", testing::closed_port());
        let publisher = EventPublisher::with_topology(&url, Topology::new("logs_topic", "logs"), TIMEOUT)
            .expect("lazy: nothing to reach yet");
        let started = Instant::now();
        let error = publisher.publish(&event("nowhere", Level::Info)).await.unwrap_err();
        assert!(matches!(error, PublishError::Unreachable(_)), "{error:?}");
        assert!(matches!(publisher.ping().await, Err(PublishError::Unreachable(_))));
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }

    #[test]
    fn a_malformed_url_is_refused_at_once() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _guard = runtime.enter();
        let error = EventPublisher::with_topology("http://nope", Topology::new("x", "y"), TIMEOUT).unwrap_err();
        assert!(matches!(&error, PublishError::Amqp(m) if m.contains("invalid AMQP URL")), "{error:?}");
    }

    #[test]
    fn dead_letter_names_derive_from_the_exchange_and_queue() {
        let topology = Topology::new("logs_topic", "logs");
        assert_eq!(topology.dead_letter_exchange, "logs_topic.dlx");
        assert_eq!(topology.dead_letter_queue, "logs.dead");
        let mail = Topology::mail("mail", "mail");
        assert_eq!((mail.binding_key.as_str(), mail.dead_letter_queue.as_str()), ("mail.send", "mail.dead"));
    }

    #[tokio::test]
    async fn a_confirmed_mail_job_waits_in_its_own_queue_as_persistent_json_with_its_id() {
        let topology = Topology::mail(&testing::unique_name("mail-ex"), &testing::unique_name("mail-q"));
        let (_, _connection, channel) = fixture().await;
        let publisher = EventPublisher::with_topology(&testing::rabbit_url(), topology.clone(), TIMEOUT).unwrap();
        let mail = serde_json::from_value(serde_json::json!({"to": "you@there.com", "subject": "s", "message": "m"}));
        let job = MailJob::new(mail.unwrap());
        publisher.publish_mail(&job).await.expect("confirmed");

        let delivery = get(&channel, &topology.queue).await.expect("the job is in the queue").delivery;
        assert_eq!(delivery.routing_key.as_str(), "mail.send");
        assert_eq!(delivery.properties.delivery_mode(), &Some(PERSISTENT));
        let id = delivery.properties.message_id().as_ref().map(ShortString::to_string);
        assert_eq!(id, Some(job.id.to_string()));
        assert_eq!(serde_json::from_slice::<MailJob>(&delivery.data).unwrap(), job);
        topology.delete(&channel).await.unwrap();
    }
}
