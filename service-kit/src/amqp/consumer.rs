//! The consuming loop, written once for the listener (events) and the mailer (mail jobs):
//! connect (with backoff) to the first of RabbitMQ's nodes that answers, starting after the
//! node of the last session ([`Nodes`]), declare the topology, consume the shared queue with
//! manual acks and a prefetch window, hand each delivery to its own task, and start over on a
//! new connection whenever the old one is lost. It never gives up; only a stop request ends
//! it. What a delivery means, and when it is acked or rejected, is the [`Handler`]'s business;
//! it runs in the delivery's span ([`delivery_span`]), in the trace of the message's publisher.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::{HeaderTable, Nodes, Topology, connection_properties, declare_advice};
use crate::metrics::gauge;
use crate::retry::{RetryPolicy, retry};

/// Processes one delivery and acks or rejects it; cheap to clone, one clone per delivery task.
pub trait Handler: Clone + Send + Sync + 'static {
    /// Handles `delivery` to the end (ack or reject). Dropped half-way when the connection is
    /// lost: the message was not acked, and RabbitMQ redelivers it.
    fn handle(&self, delivery: Delivery) -> impl Future<Output = ()> + Send;
}

/// How long connecting (TCP and the AMQP handshake, shared equally by the nodes tried), and then
/// opening the channel and declaring, may each take before the attempt counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stop waits for the deliveries in hand to be stored before closing anyway (they
/// are then redelivered).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the consumer is consuming, for `/ready`.
#[derive(Clone, Default)]
pub struct AmqpStatus {
    /// `None` while consuming; otherwise why not.
    problem: Arc<Mutex<Option<String>>>,
}

impl AmqpStatus {
    fn new() -> Self {
        Self { problem: Arc::new(Mutex::new(Some("not connected yet".into()))) }
    }

    fn set(&self, problem: Option<String>) {
        *self.problem.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = problem;
    }

    /// `Ok` while consuming, else the reason.
    pub fn check(&self) -> Result<(), String> {
        match self.problem.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone() {
            None => Ok(()),
            Some(problem) => Err(problem),
        }
    }
}

/// Everything the loop needs; built by `Application::build`, run by `run_until_stopped`.
pub struct Consumer<H> {
    /// RabbitMQ's nodes (`RABBIT_URL`, comma-separated); one session is on one of them.
    pub nodes: Nodes,
    pub connection_name: String,
    pub topology: Topology,
    pub prefetch: u16,
    /// Backoff between connection attempts.
    pub reconnect: RetryPolicy,
    pub handler: H,
    pub status: AmqpStatus,
    /// The gauge that is 1 while consuming and 0 otherwise, named for the service
    /// (`listener_consumer_connected`, `mailer_jobs_consumer_connected`).
    pub connected_metric: &'static str,
}

/// The span a delivery is handled in: a root of its own (not a child of the consuming loop),
/// joined to the publisher's trace by the message's `traceparent` header; without a valid one,
/// a trace of its own. Never a reason to refuse the delivery.
pub fn delivery_span(delivery: &Delivery) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "amqp.delivery",
        routing_key = %delivery.routing_key,
        delivery_tag = delivery.delivery_tag,
    );
    crate::trace::set_parent(&span, &HeaderTable(delivery.properties.headers().as_ref()));
    span
}

/// How a consuming session ended.
enum End {
    /// A stop was requested and the session wound down.
    Stopped,
    /// The connection or the consumer was lost.
    Lost(String),
}

/// One connection and its consuming channel.
struct Session {
    connection: Connection,
    channel: Channel,
    consumer: lapin::Consumer,
}

/// A status that starts as "not connected yet".
pub fn initial_status() -> AmqpStatus {
    AmqpStatus::new()
}

/// Stops a service that runs a consumer beside its HTTP server, from elsewhere (tests stop one
/// replica among several): the server stops gracefully, then the consumer (see
/// [`Consumer::run_beside`]).
#[derive(Clone)]
pub struct StopHandle {
    http: ServerHandle,
}

impl StopHandle {
    pub fn of(server: &Server) -> Self {
        Self { http: server.handle() }
    }

    /// Stops the HTTP server; the consumer then finishes the deliveries in hand and closes.
    pub async fn stop(&self) {
        self.http.stop(true).await;
    }
}

impl<H: Handler> Consumer<H> {
    /// Serves `server` and consumes until the server stops (SIGTERM/SIGINT, or a
    /// [`StopHandle`]): then stops taking deliveries, finishes those in hand (bounded), and
    /// closes the connection. The server's own outcome is returned.
    pub async fn run_beside(self, server: Server) -> std::io::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let server = async move {
            let result = server.await;
            stop.send_replace(true);
            result
        };
        let (result, ()) = tokio::join!(server, self.run(stopped));
        result
    }

    /// Consumes until `stop` turns true, reconnecting after every loss.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        gauge!(self.connected_metric).set(0.0);
        loop {
            let session = tokio::select! {
                session = retry("connect to RabbitMQ", self.reconnect, || self.connect()) => session,
                _ = stop.wait_for(|stop| *stop) => break,
            };
            let Ok(session) = session else {
                continue; // unreachable: the reconnect policy does not give up
            };
            self.status.set(None);
            gauge!(self.connected_metric).set(1.0);
            tracing::info!(queue = %self.topology.queue, prefetch = self.prefetch, "consuming");
            let end = self.consume(session, &mut stop).await;
            gauge!(self.connected_metric).set(0.0);
            match end {
                End::Stopped => break,
                End::Lost(reason) => {
                    tracing::warn!(%reason, "lost the RabbitMQ connection; reconnecting");
                    self.status.set(Some(format!("reconnecting: {reason}")));
                }
            }
        }
        self.status.set(Some("stopped".into()));
        tracing::info!("consumer stopped");
    }

    async fn connect(&self) -> Result<Session, String> {
        let outcome = self.open_session().await;
        if let Err(problem) = &outcome {
            self.status.set(Some(format!("cannot connect: {problem}")));
        }
        outcome
    }

    async fn open_session(&self) -> Result<Session, String> {
        let properties = connection_properties(&self.connection_name);
        let (connection, node) = self.nodes.connect(&properties, CONNECT_TIMEOUT).await.map_err(|e| e.to_string())?;
        let session = async {
            let channel = connection.create_channel().await.map_err(|e| e.to_string())?;
            self.topology.declare(&channel).await.map_err(|e| declare_advice(&e, &self.topology))?;
            channel.basic_qos(self.prefetch, BasicQosOptions::default()).await.map_err(|e| e.to_string())?;
            let consumer = channel
                .basic_consume(
                    self.topology.queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((channel, consumer))
        };
        let node = &self.nodes.names()[node];
        match tokio::time::timeout(CONNECT_TIMEOUT, session).await {
            Ok(Ok((channel, consumer))) => {
                tracing::info!(%node, "connected to RabbitMQ");
                Ok(Session { connection, channel, consumer })
            }
            Ok(Err(problem)) => Err(format!("{node}: {problem}")),
            Err(_) => Err(format!("{node}: no channel and consumer within {CONNECT_TIMEOUT:?}")),
        }
    }

    /// Runs one session: each delivery in its own task (the prefetch window bounds how many).
    /// When the session is lost, the tasks still in hand are dropped: their messages were not
    /// acked and RabbitMQ redelivers them.
    async fn consume(&self, session: Session, stop: &mut watch::Receiver<bool>) -> End {
        let Session { connection, channel, mut consumer } = session;
        let mut in_hand = JoinSet::new();
        let end = loop {
            tokio::select! {
                delivery = consumer.next() => match delivery {
                    Some(Ok(delivery)) => {
                        let handler = self.handler.clone();
                        let span = delivery_span(&delivery);
                        in_hand.spawn(async move { handler.handle(delivery).await }.instrument(span));
                    }
                    Some(Err(error)) => break End::Lost(error.to_string()),
                    None => break End::Lost("the broker cancelled the consumer".into()),
                },
                Some(done) = in_hand.join_next() => {
                    if let Err(error) = done {
                        tracing::error!(%error, "a delivery task failed");
                    }
                }
                _ = stop.wait_for(|stop| *stop) => break End::Stopped,
            }
        };
        if let End::Stopped = end {
            // No new deliveries; finish what is in hand, then close cleanly. Anything
            // prefetched but not started is requeued by RabbitMQ when the channel closes.
            let tag = consumer.tag();
            if let Err(error) = channel.basic_cancel(tag, BasicCancelOptions::default()).await {
                tracing::warn!(%error, "cannot cancel the consumer");
            }
            let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
                while let Some(done) = in_hand.join_next().await {
                    if let Err(error) = done {
                        tracing::error!(%error, "a delivery task failed");
                    }
                }
            })
            .await;
            if drained.is_err() {
                tracing::warn!(left = in_hand.len(), "stopping with deliveries in hand; RabbitMQ will redeliver them");
            }
            let _ = channel.close(200, "consumer stopping".into()).await;
            let _ = connection.close(200, "consumer stopping".into()).await;
        }
        end
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use contract::log::{Level, LogPayload};
    use lapin::options::{BasicAckOptions, BasicPublishOptions};
    use lapin::types::AMQPValue;
    use lapin::{BasicProperties, ConnectionProperties};
    use secrecy::SecretString;
    use tokio::sync::mpsc;

    use super::*;
    use crate::amqp::EventPublisher;
    use crate::testing;
    use crate::trace;

    /// Acks every delivery and reports its message id with the trace id it was handled in.
    #[derive(Clone)]
    struct Traces(mpsc::UnboundedSender<(String, Option<String>)>);

    impl Handler for Traces {
        async fn handle(&self, delivery: Delivery) {
            let id = delivery.properties.message_id().as_ref().map(ToString::to_string).unwrap_or_default();
            let _ = self.0.send((id, trace::current_trace_id()));
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
        }
    }

    /// A message published outside any trace, with `headers` as they are.
    async fn publish_raw(channel: &Channel, topology: &Topology, id: &str, headers: Option<FieldTable>) {
        let mut properties = BasicProperties::default().with_message_id(id.into());
        if let Some(headers) = headers {
            properties = properties.with_headers(headers);
        }
        let exchange = topology.exchange.as_str().into();
        channel
            .basic_publish(exchange, "log.INFO".into(), BasicPublishOptions::default(), b"{}", properties)
            .await
            .unwrap()
            .await
            .unwrap();
    }

    fn traceparent_header(value: AMQPValue) -> Option<FieldTable> {
        let mut headers = FieldTable::default();
        headers.insert(trace::TRACEPARENT.into(), value);
        Some(headers)
    }

    #[tokio::test]
    async fn a_delivery_is_handled_in_the_trace_of_its_publisher_and_a_bad_header_starts_a_fresh_one() {
        crate::telemetry::init_for_tests();
        let topology = Topology::new(&testing::unique_name("ex"), &testing::unique_name("q"));
        let connection = Connection::connect(&testing::rabbit_url(), ConnectionProperties::default()).await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        let publisher =
            EventPublisher::with_topology(&testing::rabbit_url(), topology.clone(), Duration::from_secs(5)).unwrap();
        // Declares the topology: the raw publishes below need the queue.
        publisher.ping().await.unwrap();

        let request = tracing::info_span!("request");
        let trace_id = trace::trace_id(&request).expect("the test's OTel layer");
        let payload = LogPayload { name: "n".parse().unwrap(), data: "d".parse().unwrap(), level: Some(Level::Info) };
        let event = contract::event::LogEvent::new(payload, None);
        publisher.publish(&event).instrument(request).await.unwrap();
        publish_raw(&channel, &topology, "none", None).await;
        let bad = "00-zz-yy-01";
        publish_raw(&channel, &topology, "bad", traceparent_header(AMQPValue::LongString(bad.into()))).await;
        let zero = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        publish_raw(&channel, &topology, "zero", traceparent_header(AMQPValue::LongString(zero.into()))).await;
        publish_raw(&channel, &topology, "number", traceparent_header(AMQPValue::LongInt(7))).await;

        let (sender, mut handled) = mpsc::unbounded_channel();
        let consumer = Consumer {
            nodes: Nodes::new(&[SecretString::from(testing::rabbit_url())]).unwrap(),
            connection_name: testing::unique_name("consumer"),
            topology: topology.clone(),
            prefetch: 10,
            reconnect: RetryPolicy::forever(Duration::from_millis(50), Duration::from_millis(500)),
            handler: Traces(sender),
            status: initial_status(),
            connected_metric: "test_consumer_connected",
        };
        let (stop, stopped) = watch::channel(false);
        let running = tokio::spawn(consumer.run(stopped));

        let mut traces = std::collections::HashMap::new();
        while traces.len() < 5 {
            let (id, trace) = tokio::time::timeout(Duration::from_secs(10), handled.recv()).await.unwrap().unwrap();
            traces.insert(id, trace.expect("every delivery is in a trace"));
        }
        assert_eq!(traces[&event.id.to_string()], trace_id, "the publisher's trace");
        let fresh: std::collections::HashSet<&String> =
            ["none", "bad", "zero", "number"].iter().map(|id| &traces[*id]).collect();
        assert_eq!(fresh.len(), 4, "each a trace of its own: {traces:?}");
        assert!(!fresh.contains(&trace_id));

        stop.send_replace(true);
        running.await.unwrap();
        topology.delete(&channel).await.unwrap();
    }
}
