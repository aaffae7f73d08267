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
//! Queue type ([`QueueType`], `QUEUE_TYPE`): classic by default, which is what one local node
//! needs; quorum in a cluster, where a queue must survive the loss of the node it lives on
//! (quorum queues are replicated by Raft over the nodes; classic mirroring is gone in RabbitMQ 4).
//! Every queue the topology declares gets the same type. A queue's type cannot change once it
//! exists: [`declare_advice`] turns RabbitMQ's refusal into what to do.
//!
//! Nodes ([`Nodes`]): a list of AMQP URLs, one per node of a cluster. Each connect tries them in
//! turn, starting after the node last connected to, each within its share of the timeout; so a
//! client whose node went away reconnects to the next one.
//!
//! Trace: every message carries its publishing span's W3C `traceparent` as the AMQP header of
//! that name; the consumer opens one span per delivery parented from it ([`HeaderTable`]), so
//! what the listener and the mailer log for a message, and the entry stored from an event, carry
//! the trace of the request that published it.
//!
//! Publisher: its connection comes from a pool of one ([`Nodes`] connecting; `deadpool-lapin`
//! takes one URL only) and confirm-mode channels from a second pool on top of it. A publish borrows a channel only to send, then waits for the
//! broker's confirm with the channel already back in the pool, so concurrent publishes pipeline
//! on few channels. A channel or connection that broke is discarded when it is next taken from
//! its pool (and at once by the publish that saw the failure); the next publish reconnects. A
//! channel that got a nack is closed, and so discarded too.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use contract::event::{BINDING_KEY, CONTENT_TYPE, LogEvent};
use contract::mail::MailJob;
use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use opentelemetry::propagation::Extractor;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::trace;

pub mod consumer;

/// A message's AMQP headers as the trace propagator reads them (see [`crate::trace`]): the
/// publisher puts the `traceparent` of its span there, the consumer's delivery span joins it.
/// A header that is not a UTF-8 string reads as absent.
pub struct HeaderTable<'a>(pub Option<&'a FieldTable>);

impl Extractor for HeaderTable<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.0?.inner().get(key)? {
            AMQPValue::LongString(value) => std::str::from_utf8(value.as_bytes()).ok(),
            AMQPValue::ShortString(value) => Some(value.as_str()),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0.map(|table| table.inner().keys().map(ShortString::as_str).collect()).unwrap_or_default()
    }
}

/// `delivery_mode` of a message RabbitMQ writes to disk (survives a broker restart).
pub const PERSISTENT: u8 = 2;
/// Channels the publisher keeps open; a publish holds one only while sending.
pub const PUBLISH_CHANNELS: usize = 8;

/// The type of every queue a [`Topology`] declares (`QUEUE_TYPE=classic|quorum`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// One node holds the queue: what a single local RabbitMQ needs, and the default. In a
    /// cluster its messages are unavailable while that node is down.
    #[default]
    Classic,
    /// Replicated over the cluster's nodes (Raft): it survives the loss of a minority of them.
    /// Works on a single node too, without the replication.
    Quorum,
}

impl QueueType {
    /// The value of the queue's `x-queue-type` argument.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

/// What to do when declaring a topology failed: RabbitMQ's words, and, when the queue exists
/// with another type (PRECONDITION_FAILED on `x-queue-type`), how to get out of it.
pub fn declare_advice(error: &lapin::Error, topology: &Topology) -> String {
    let text = error.to_string();
    if text.contains("PRECONDITION_FAILED") && text.contains("x-queue-type") {
        format!(
            "{text}. A queue's type cannot change: set QUEUE_TYPE={} to keep the queues as they are, or \
             move them to {}: stop the publishers, let the listeners drain '{}', delete it and \
             '{}' (`rabbitmqctl delete_queue <name>`), then start everything with the new QUEUE_TYPE",
            other(topology.queue_type).as_str(),
            topology.queue_type.as_str(),
            topology.queue,
            topology.dead_letter_queue,
        )
    } else {
        text
    }
}

fn other(queue_type: QueueType) -> QueueType {
    match queue_type {
        QueueType::Classic => QueueType::Quorum,
        QueueType::Quorum => QueueType::Classic,
    }
}

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
    /// The type of both queues (classic unless [`with_queue_type`](Self::with_queue_type)).
    pub queue_type: QueueType,
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
            queue_type: QueueType::default(),
        }
    }

    /// The mail-job topology of `exchange` and `queue`: the same shape, bound to
    /// [`contract::mail::ROUTING_KEY`].
    pub fn mail(exchange: &str, queue: &str) -> Self {
        Self { binding_key: contract::mail::ROUTING_KEY.to_owned(), ..Self::new(exchange, queue) }
    }

    /// The same topology with queues of `queue_type`.
    pub fn with_queue_type(self, queue_type: QueueType) -> Self {
        Self { queue_type, ..self }
    }

    /// The arguments every queue of this topology is declared with: its type. Classic is
    /// written out too, so that a classic declare against a quorum queue is refused rather than
    /// silently consuming from a queue of the other type.
    fn queue_arguments(&self) -> FieldTable {
        let mut arguments = FieldTable::default();
        arguments.insert("x-queue-type".into(), AMQPValue::LongString(self.queue_type.as_str().into()));
        arguments
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
        channel.queue_declare(self.dead_letter_queue.as_str().into(), durable_queue, self.queue_arguments()).await?;
        channel
            .queue_bind(
                self.dead_letter_queue.as_str().into(),
                self.dead_letter_exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut arguments = self.queue_arguments();
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

/// The nodes of one RabbitMQ (a list of AMQP URLs, secrets as they may carry passwords) and
/// where the next connect starts. Cheap to clone; clones share the rotation.
#[derive(Clone)]
pub struct Nodes {
    /// Parsed once, so that a malformed URL is refused at start-up, not at the first connect.
    uris: Arc<[AMQPUri]>,
    /// `host:port` of each, for messages (the URLs themselves may hold a password).
    names: Arc<[String]>,
    /// The node the next connect tries first: the one after the node last connected to.
    next: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Nodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names.iter()).finish()
    }
}

impl Nodes {
    /// The nodes of `urls`; an error names the first URL (by position) that does not parse.
    pub fn new(urls: &[SecretString]) -> Result<Self, String> {
        if urls.is_empty() {
            return Err("no AMQP URL given".into());
        }
        let uris = urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                url.expose_secret().parse::<AMQPUri>().map_err(|e| format!("invalid AMQP URL (item {}): {e}", i + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let names = uris.iter().map(|uri| format!("{}:{}", uri.authority.host, uri.authority.port)).collect();
        Ok(Self { uris: uris.into(), names, next: Arc::new(AtomicUsize::new(0)) })
    }

    /// `host:port` of each node, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Connects to the first node that answers, trying each once in turn, starting after the
    /// node last connected to; each attempt gets an equal share of `timeout`, so that a node
    /// that hangs leaves time for the others. Returns the connection and the node's index; the
    /// error lists every node's failure.
    pub async fn connect(
        &self,
        properties: &ConnectionProperties,
        timeout: Duration,
    ) -> Result<(Connection, usize), NoNode> {
        let count = self.uris.len();
        let mut timed_out = 0;
        let share = timeout / u32::try_from(count).unwrap_or(u32::MAX);
        let start = self.next.load(Ordering::Relaxed);
        let mut failures = Vec::with_capacity(count);
        for offset in 0..count {
            let index = (start + offset) % count;
            let attempt = Connection::connect_uri(self.uris[index].clone(), properties.clone());
            match tokio::time::timeout(share, attempt).await {
                Ok(Ok(connection)) => {
                    self.next.store((index + 1) % count, Ordering::Relaxed);
                    if offset > 0 {
                        tracing::info!(node = %self.names[index], "connected to another RabbitMQ node");
                    }
                    return Ok((connection, index));
                }
                Ok(Err(error)) => failures.push(format!("{}: {error}", self.names[index])),
                Err(_) => {
                    timed_out += 1;
                    failures.push(format!("{}: no answer within {share:?}", self.names[index]));
                }
            }
        }
        // Whoever calls again starts one further on, not at the same dead node.
        self.next.store((start + 1) % count, Ordering::Relaxed);
        Err(NoNode { failures: failures.join("; "), timed_out: timed_out == count })
    }
}

/// No node of [`Nodes`] could be connected to.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{failures}")]
pub struct NoNode {
    /// Each node's failure, `host:port: why`, in the order tried.
    pub failures: String,
    /// Every node let its attempt time out (none refused): the caller's timeout, not a refusal.
    pub timed_out: bool,
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

/// Makes the publisher's connection: to the first node of [`Nodes`] that answers.
struct ConnectionManager {
    nodes: Nodes,
    properties: ConnectionProperties,
    /// Bound on one connect over all the nodes.
    timeout: Duration,
}

impl managed::Manager for ConnectionManager {
    type Type = Connection;
    type Error = PublishError;

    async fn create(&self) -> Result<Connection, PublishError> {
        let (connection, node) = self.nodes.connect(&self.properties, self.timeout).await.map_err(|error| {
            // Nodes that never answer are a timeout (504), as they were with one URL; a refusal
            // means unreachable (502).
            if error.timed_out {
                PublishError::Timeout(self.timeout)
            } else {
                PublishError::Unreachable(error.failures)
            }
        })?;
        tracing::debug!(node = %self.nodes.names()[node], "publisher connected");
        Ok(connection)
    }

    async fn recycle(&self, connection: &mut Connection, _: &Metrics) -> RecycleResult<PublishError> {
        if connection.status().connected() { Ok(()) } else { Err(RecycleError::message("the connection is closed")) }
    }
}

/// Makes confirm-mode channels on the pooled connection.
struct ChannelManager {
    connections: managed::Pool<ConnectionManager>,
    /// Declared by every new channel: events published before any listener ever ran are
    /// queued, not dropped.
    topology: Topology,
}

impl managed::Manager for ChannelManager {
    type Type = Channel;
    type Error = PublishError;

    async fn create(&self) -> Result<Channel, PublishError> {
        let connection = self.connections.get().await?;
        let channel = connection.create_channel().await?;
        // The channel keeps the connection open; the pooled connection goes back for the next channel.
        drop(connection);
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        if let Err(error) = self.topology.declare(&channel).await {
            let advice = declare_advice(&error, &self.topology);
            return Err(match PublishError::from(error) {
                PublishError::Amqp(_) => PublishError::Amqp(advice),
                unreachable => unreachable,
            });
        }
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
    /// RabbitMQ's nodes, kept to rebuild the pools with another connection name.
    nodes: Nodes,
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
        Self::with_nodes(&[SecretString::from(amqp_url)], topology, timeout)
    }

    /// [`with_topology`](Self::with_topology) on several nodes of one cluster: it connects to
    /// the first that answers ([`Nodes::connect`]), and after losing that connection to the next.
    pub fn with_nodes(urls: &[SecretString], topology: Topology, timeout: Duration) -> Result<Self, PublishError> {
        let nodes = Nodes::new(urls).map_err(PublishError::Amqp)?;
        let channels = Self::pools(&nodes, topology.clone(), DEFAULT_PUBLISHER_NAME, timeout)?;
        Ok(Self { channels, nodes, topology, timeout })
    }

    /// The same publisher under another connection name (default [`DEFAULT_PUBLISHER_NAME`]);
    /// call it before the first publish.
    pub fn with_connection_name(self, connection_name: &str) -> Result<Self, PublishError> {
        let channels = Self::pools(&self.nodes, self.topology.clone(), connection_name, self.timeout)?;
        Ok(Self { channels, ..self })
    }

    /// A pool of one connection and a pool of channels on it; nothing connects yet.
    fn pools(
        nodes: &Nodes,
        topology: Topology,
        connection_name: &str,
        timeout: Duration,
    ) -> Result<managed::Pool<ChannelManager>, PublishError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(PublishError::Amqp("the publisher must be created inside a tokio runtime".into()));
        }
        let manager =
            ConnectionManager { nodes: nodes.clone(), properties: connection_properties(connection_name), timeout };
        let connections =
            managed::Pool::builder(manager).max_size(1).build().map_err(|e| PublishError::Amqp(e.to_string()))?;
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
        let mut properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type(CONTENT_TYPE.into())
            .with_message_id(message_id.into())
            .with_timestamp(timestamp);
        // The publishing span's trace, for the consumer's delivery span to join.
        if let Some(traceparent) = trace::traceparent(&tracing::Span::current()) {
            let mut headers = FieldTable::default();
            headers.insert(trace::TRACEPARENT.into(), AMQPValue::LongString(traceparent.into()));
            properties = properties.with_headers(headers);
        }
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
        let sent_on = Channel::clone(&channel);
        drop(channel);
        match confirm.await? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) => Err(PublishError::Amqp(format!(
                "no queue is bound to {routing_key} on {}: the broker returned the message ({})",
                self.topology.exchange, returned.reply_text
            ))),
            Confirmation::Nack(_) => {
                // A nacking channel may go on nacking: RabbitMQ 3.10's channel kept the quorum
                // queue's leader it saw while a node was shutting down, and nacked every later
                // publish (the cluster test saw it). Closed, it is not handed out again; the
                // next publish opens a fresh one.
                let _ = sent_on.close(200, "a publish was nacked".into()).await;
                Err(PublishError::Nacked)
            }
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
    async fn a_message_carries_the_traceparent_of_its_publishing_span() {
        use tracing::Instrument;
        crate::telemetry::init_for_tests();
        let (topology, _connection, channel) = fixture().await;
        let publisher = EventPublisher::with_topology(&testing::rabbit_url(), topology.clone(), TIMEOUT).unwrap();
        let request = tracing::info_span!("request");
        let trace_id = trace::trace_id(&request).expect("the test's OTel layer");
        let request_span = trace::traceparent(&request).unwrap();
        publisher.publish(&event("traced", Level::Info)).instrument(request).await.unwrap();

        let delivery = get(&channel, &topology.queue).await.expect("the event is in the queue").delivery;
        let headers = delivery.properties.headers().as_ref();
        assert!(matches!(headers.unwrap().inner().get("traceparent"), Some(AMQPValue::LongString(_))));
        let traceparent = HeaderTable(headers).get(trace::TRACEPARENT).expect("a traceparent header").to_owned();
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!((parts.len(), parts[0], parts[1], parts[3]), (4, "00", trace_id.as_str(), "01"), "{traceparent}");
        assert_ne!(parts[2], request_span.split('-').nth(2).unwrap(), "the publish span's own id, a child's");
        assert_eq!(HeaderTable(headers).keys(), ["traceparent"]);

        // Outside any request, the publish span starts a trace of its own.
        publisher.publish(&event("untraced", Level::Info)).await.unwrap();
        let delivery = get(&channel, &topology.queue).await.unwrap().delivery;
        let own = HeaderTable(delivery.properties.headers().as_ref()).get(trace::TRACEPARENT).map(str::to_owned);
        let own = own.expect("the publish span's trace");
        assert_ne!(own.split('-').nth(1), Some(trace_id.as_str()));
        topology.delete(&channel).await.unwrap();
    }

    #[tokio::test]
    async fn a_mail_job_carries_the_traceparent_of_its_publishing_span() {
        use tracing::Instrument;
        crate::telemetry::init_for_tests();
        let topology = Topology::mail(&testing::unique_name("mail-ex"), &testing::unique_name("mail-q"));
        let (_, _connection, channel) = fixture().await;
        let publisher = EventPublisher::with_topology(&testing::rabbit_url(), topology.clone(), TIMEOUT).unwrap();
        let mail = serde_json::from_value(serde_json::json!({"to": "you@there.com", "subject": "s", "message": "m"}));
        let request = tracing::info_span!("request");
        let trace_id = trace::trace_id(&request).unwrap();
        publisher.publish_mail(&MailJob::new(mail.unwrap())).instrument(request).await.unwrap();
        let delivery = get(&channel, &topology.queue).await.expect("the job is in the queue").delivery;
        let traceparent =
            HeaderTable(delivery.properties.headers().as_ref()).get(trace::TRACEPARENT).map(str::to_owned);
        assert_eq!(traceparent.as_deref().and_then(|t| t.split('-').nth(1)), Some(trace_id.as_str()));
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

    /// `x-queue-type` of `queue`, as RabbitMQ reports it.
    fn queue_type_of(queue: &str) -> String {
        let ctl = testing::env_or(testing::TEST_RABBITMQCTL, "rabbitmqctl");
        let output = std::process::Command::new(&ctl)
            .args(["list_queues", "name", "type", "--quiet", "--no-table-headers"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {ctl}: {e}"));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|line| line.split_once('\t').filter(|(name, _)| *name == queue).map(|(_, t)| t.trim().to_owned()))
            .unwrap_or_else(|| panic!("no queue {queue}"))
    }

    #[tokio::test]
    async fn quorum_topology_declares_quorum_queues_that_take_events_on_a_single_node() {
        let (topology, _connection, channel) = fixture().await;
        let topology = topology.with_queue_type(QueueType::Quorum);
        let publisher = EventPublisher::with_topology(&testing::rabbit_url(), topology.clone(), TIMEOUT).unwrap();
        let sent = event("replicated", Level::Error);
        publisher.publish(&sent).await.expect("confirmed by a quorum queue");
        topology.declare(&channel).await.expect("declaring again is idempotent");

        assert_eq!(queue_type_of(&topology.queue), "quorum");
        assert_eq!(queue_type_of(&topology.dead_letter_queue), "quorum");
        let message = get(&channel, &topology.queue).await.expect("the event is in the queue");
        assert_eq!(serde_json::from_slice::<LogEvent>(&message.delivery.data).unwrap(), sent);
        topology.delete(&channel).await.unwrap();
    }

    #[tokio::test]
    async fn a_queue_of_the_other_type_is_refused_with_what_to_do() {
        let (classic, connection, channel) = fixture().await;
        classic.declare(&channel).await.unwrap();
        assert_eq!(queue_type_of(&classic.queue), "classic");

        let quorum = classic.clone().with_queue_type(QueueType::Quorum);
        let publisher = EventPublisher::with_topology(&testing::rabbit_url(), quorum.clone(), TIMEOUT).unwrap();
        let error = publisher.ping().await.unwrap_err();
        let PublishError::Amqp(message) = &error else { panic!("{error:?}") };
        for needed in ["PRECONDITION_FAILED", "QUEUE_TYPE=classic", "delete_queue", classic.queue.as_str()] {
            assert!(message.contains(needed), "{needed:?} missing from: {message}");
        }
        // The refusal closed that channel: clean up on a new one.
        let channel = connection.create_channel().await.unwrap();
        let direct = quorum.declare(&channel).await.unwrap_err();
        assert!(declare_advice(&direct, &quorum).contains("QUEUE_TYPE=classic"));
        let channel = connection.create_channel().await.unwrap();
        classic.delete(&channel).await.unwrap();
    }

    /// Runs `rabbitmqctl <args>` on the local broker; panics if it fails.
    fn rabbitmqctl(args: &[&str]) {
        let ctl = testing::env_or(testing::TEST_RABBITMQCTL, "rabbitmqctl");
        let output = std::process::Command::new(&ctl).args(args).output().unwrap();
        assert!(output.status.success(), "{ctl} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }

    #[tokio::test]
    async fn a_nacked_publish_closes_its_channel_and_the_next_publish_takes_a_fresh_one() {
        let (topology, _connection, channel) = fixture().await;
        let publisher = EventPublisher::with_topology(&testing::rabbit_url(), topology.clone(), TIMEOUT).unwrap();
        publisher.ping().await.unwrap();
        let first = publisher.channels.get().await.unwrap().id();
        // A full queue that refuses more: RabbitMQ nacks the publish.
        let policy = testing::unique_name("full");
        let pattern = format!("^{}$", topology.queue);
        let definition = r#"{"max-length":0,"overflow":"reject-publish"}"#;
        rabbitmqctl(&["set_policy", &policy, &pattern, definition, "--apply-to", "queues"]);
        testing::eventually("a nack under the policy", Duration::from_secs(10), || async {
            matches!(publisher.publish(&event("refused", Level::Info)).await, Err(PublishError::Nacked)).then_some(())
        })
        .await;
        rabbitmqctl(&["clear_policy", &policy]);

        publisher.publish(&event("accepted", Level::Info)).await.expect("the queue takes messages again");
        let now = publisher.channels.get().await.unwrap().id();
        assert_ne!(now, first, "the channel that got the nack was closed, not handed out again");
        topology.delete(&channel).await.unwrap();
    }

    #[tokio::test]
    async fn queues_declared_before_queue_type_existed_are_accepted_as_classic() {
        let (topology, _connection, channel) = fixture().await;
        // As the code before `QUEUE_TYPE` declared it: no `x-queue-type`.
        let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        channel
            .queue_declare(topology.dead_letter_queue.as_str().into(), durable, FieldTable::default())
            .await
            .unwrap();
        topology.declare(&channel).await.expect("an explicit classic matches a queue declared without a type");
        topology.delete(&channel).await.unwrap();
    }

    #[test]
    fn the_queue_type_setting_reads_classic_or_quorum_and_refuses_anything_else() {
        #[derive(Debug, serde::Deserialize, Default)]
        #[serde(default)]
        struct Probe {
            #[serde(rename = "QUEUE_TYPE")]
            queue_type: QueueType,
        }
        let read = |value: &str| crate::Env::from_pairs([("QUEUE_TYPE", value)]).read::<Probe>(1, &[]);
        assert_eq!(read("").unwrap().queue_type, QueueType::Classic, "default");
        assert_eq!(read("quorum").unwrap().queue_type, QueueType::Quorum);
        assert_eq!(read("classic").unwrap().queue_type, QueueType::Classic);
        let error = read("mirrored").unwrap_err();
        assert_eq!(error.key, "QUEUE_TYPE");
        assert!(error.reason.contains("classic") && error.reason.contains("quorum"), "{}", error.reason);
    }

    #[tokio::test]
    async fn a_publisher_given_several_nodes_uses_the_next_when_one_refuses() {
        let (topology, _connection, channel) = fixture().await;
        let down = format!("amqp://guest:guest@127.0.0.1:{}/%2f", testing::closed_port());
        let urls = [SecretString::from(down), SecretString::from(testing::rabbit_url())];
        let publisher = EventPublisher::with_nodes(&urls, topology.clone(), TIMEOUT).unwrap();
        publisher.publish(&event("second node", Level::Info)).await.expect("confirmed by the node that is up");
        assert!(get(&channel, &topology.queue).await.is_some());
        topology.delete(&channel).await.unwrap();
    }

    #[tokio::test]
    async fn nodes_start_after_the_last_one_connected_to_and_report_every_failure() {
        let ports = [testing::closed_port(), testing::closed_port()];
        let urls: Vec<SecretString> =
            ports.iter().map(|p| SecretString::from(format!("amqp://guest:s3cret@127.0.0.1:{p}/%2f"))).collect();
        let nodes = Nodes::new(&urls).unwrap();
        let error = nodes.connect(&ConnectionProperties::default(), TIMEOUT).await.unwrap_err();
        assert!(!error.timed_out, "refused, not timed out");
        let error = error.to_string();
        for port in ports {
            assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
        }
        assert!(!error.contains("s3cret"), "no password in messages: {error}");
        assert_eq!(format!("{nodes:?}"), format!("[\"127.0.0.1:{}\", \"127.0.0.1:{}\"]", ports[0], ports[1]));

        let up = [SecretString::from(testing::rabbit_url()), SecretString::from(testing::rabbit_url())];
        let nodes = Nodes::new(&up).unwrap();
        let (_first, index) = nodes.connect(&ConnectionProperties::default(), TIMEOUT).await.unwrap();
        let (_second, next) = nodes.connect(&ConnectionProperties::default(), TIMEOUT).await.unwrap();
        assert_eq!((index, next), (0, 1), "a reconnect starts at the next node");
        let bad = Nodes::new(&[SecretString::from(testing::rabbit_url()), SecretString::from("http://x")]);
        assert!(bad.unwrap_err().contains("item 2"));
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
