//! The consuming loop: connect (with backoff), declare the topology, consume the shared queue
//! with manual acks and a prefetch window, hand each delivery to its own task, and start over
//! on a new connection whenever the old one is lost. It never gives up; only a stop request
//! ends it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use service_kit::amqp::{Topology, connection_properties};
use service_kit::metrics::gauge;
use service_kit::retry::{RetryPolicy, retry};
use service_kit::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::handler::Handler;
use crate::metrics;

/// How long connecting (TCP and the AMQP handshake) may take before it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stop waits for the deliveries in hand to be stored before closing anyway (they
/// are then redelivered).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the listener is consuming, for `/ready`.
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
pub struct Consumer {
    pub rabbit_url: SecretString,
    pub connection_name: String,
    pub topology: Topology,
    pub prefetch: u16,
    /// Backoff between connection attempts.
    pub reconnect: RetryPolicy,
    pub handler: Handler,
    pub status: AmqpStatus,
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

impl Consumer {
    /// A status that starts as "not connected yet".
    pub fn initial_status() -> AmqpStatus {
        AmqpStatus::new()
    }

    /// Consumes until `stop` turns true, reconnecting after every loss.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        gauge!(metrics::CONNECTED).set(0.0);
        loop {
            let session = tokio::select! {
                session = retry("connect to RabbitMQ", self.reconnect, || self.connect()) => session,
                _ = stop.wait_for(|stop| *stop) => break,
            };
            let Ok(session) = session else {
                continue; // unreachable: the reconnect policy does not give up
            };
            self.status.set(None);
            gauge!(metrics::CONNECTED).set(1.0);
            tracing::info!(queue = %self.topology.queue, prefetch = self.prefetch, "consuming");
            let end = self.consume(session, &mut stop).await;
            gauge!(metrics::CONNECTED).set(0.0);
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
        let session = async {
            let connection =
                Connection::connect(self.rabbit_url.expose_secret(), connection_properties(&self.connection_name))
                    .await?;
            let channel = connection.create_channel().await?;
            self.topology.declare(&channel).await?;
            channel.basic_qos(self.prefetch, BasicQosOptions::default()).await?;
            let consumer = channel
                .basic_consume(
                    self.topology.queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>(Session { connection, channel, consumer })
        };
        let outcome = match tokio::time::timeout(CONNECT_TIMEOUT, session).await {
            Ok(Ok(session)) => Ok(session),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
        };
        if let Err(problem) = &outcome {
            self.status.set(Some(format!("cannot connect: {problem}")));
        }
        outcome
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
                        in_hand.spawn(async move { handler.handle(delivery).await });
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
            let _ = channel.close(200, "listener stopping".into()).await;
            let _ = connection.close(200, "listener stopping".into()).await;
        }
        end
    }
}
