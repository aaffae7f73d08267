//! What happens to one delivery: parse and check it, store it through the logger, then ack it
//! or send it to the dead-letter queue. Nothing is acknowledged before the logger confirmed
//! the write.
//!
//! Failures, and why each is treated so:
//! - Not JSON, missing fields, or outside the contract's limits: no retry can fix it, so it is
//!   rejected (`requeue=false`) to the dead-letter queue at once, and logged.
//! - Refused by the logger (`LogError::Invalid`): the same, for the same reason.
//! - The logger is unreachable, times out, or cannot reach MongoDB, and its `ping` fails too:
//!   an outage, not this event's fault. The event is held (unacked) and the write retried with
//!   a capped backoff for as long as the outage lasts; these tries do not count. Dead-lettering
//!   here would empty the queue into the dead-letter queue during every logger restart, and a
//!   `nack(requeue=true)` would spin every event between RabbitMQ and the listener at full speed
//!   while the logger is down. Holding costs at most the prefetch window of unacked messages;
//!   the rest wait in the queue, and if this replica dies RabbitMQ redelivers what it held.
//! - Any other failure while the logger answers its `ping`: something about this event makes
//!   the write fail. It is retried with backoff, and dead-lettered after `max_attempts`.
//!
//! A write may reach MongoDB and its answer be lost; the retry (or a redelivery) then sends the
//! same event id again, and the logger stores an event id at most once.

use contract::event::LogEvent;
use contract::log::{LogEntry, LogError};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use service_kit::logger_client::{LoggerRpc, RpcError};
use service_kit::retry::RetryPolicy;

use crate::go_original::{self, Origin};

/// How much of a malformed body a log line shows.
const SHOWN_BODY_BYTES: usize = 200;

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The logger stored it (or had already): ack.
    Stored { id: String },
    /// It can never be stored: reject to the dead-letter queue.
    DeadLetter { reason: String },
}

/// What to do after a failed write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Give up on this event now.
    DeadLetter(String),
    /// The logger is down: wait for it, without counting the attempt.
    WaitForLogger,
    /// The logger is up but this write failed: count it, and try again.
    Retry,
}

/// The rule of the module docs. `logger_healthy` is the answer of a `ping` made after the failure.
pub fn after_failure(error: &RpcError, logger_healthy: bool, failures: u32, max_attempts: u32) -> Next {
    match error {
        RpcError::Logger(LogError::Invalid(reason)) => Next::DeadLetter(format!("the logger refused it: {reason}")),
        _ if !logger_healthy => Next::WaitForLogger,
        _ if failures >= max_attempts => Next::DeadLetter(format!("{failures} failed writes, the last: {error}")),
        _ => Next::Retry,
    }
}

/// Reads an event off the wire and checks it against the contract.
pub fn parse(body: &[u8]) -> Result<LogEvent, String> {
    let event: LogEvent = serde_json::from_slice(body).map_err(|e| format!("not a log event: {e}"))?;
    event.validate().map_err(|e| format!("invalid log event: {e}"))?;
    Ok(event)
}

/// Reads a delivery's event: ours, or else the Go original's `{"name","data"}` (see
/// [`go_original`]); a body that is neither is refused with the reason it is not ours.
pub fn parse_delivery(body: &[u8], origin: &Origin<'_>) -> Result<LogEvent, String> {
    parse(body).or_else(|not_ours| go_original::parse(body, origin).unwrap_or(Err(not_ours)))
}

/// Processes deliveries; cheap to clone, one clone per delivery task.
#[derive(Clone)]
pub struct Handler {
    /// The shared, self-reconnecting logger client.
    logger: LoggerRpc,
    /// Failed writes (with the logger up) before an event is dead-lettered.
    max_attempts: u32,
    /// The delays between writes of one event; without end, `max_attempts` decides when to stop.
    backoff: RetryPolicy,
}

impl Handler {
    pub fn new(logger: LoggerRpc, max_attempts: u32, backoff: RetryPolicy) -> Self {
        Self { logger, max_attempts: max_attempts.max(1), backoff }
    }

    /// Stores the delivery's event and acks it, or rejects it to the dead-letter queue. An ack
    /// or reject that fails (the channel closed meanwhile) leaves the message to RabbitMQ,
    /// which redelivers it; the logger stores its event id once.
    #[tracing::instrument(name = "listener.delivery", skip_all, fields(delivery_tag = delivery.delivery_tag, routing_key = %delivery.routing_key, redelivered = delivery.redelivered))]
    pub async fn handle(&self, delivery: Delivery) {
        match self.process(&delivery.data, &Origin::of(delivery.routing_key.as_str(), &delivery.properties)).await {
            Verdict::Stored { id } => {
                tracing::debug!(%id, "stored");
                if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
                    tracing::warn!(%error, "cannot ack a stored event; RabbitMQ will redeliver it");
                }
            }
            Verdict::DeadLetter { reason } => {
                tracing::warn!(%reason, body = %shown(&delivery.data), "dead-lettering the message");
                if let Err(error) = delivery.reject(BasicRejectOptions { requeue: false }).await {
                    tracing::warn!(%error, "cannot reject the message; RabbitMQ will redeliver it");
                }
            }
        }
    }

    /// The verdict on one message (the whole of `handle` but the ack).
    pub async fn process(&self, body: &[u8], origin: &Origin<'_>) -> Verdict {
        match parse_delivery(body, origin) {
            Ok(event) => self.store(event).await,
            Err(reason) => Verdict::DeadLetter { reason },
        }
    }

    async fn store(&self, event: LogEvent) -> Verdict {
        let event_id = event.id;
        let entry: LogEntry = event.into_entry();
        let mut failures = 0;
        let mut waited = false;
        let mut delays = self.backoff.delays();
        loop {
            let error = match self.logger.write_log(entry.clone()).await {
                Ok(id) => return Verdict::Stored { id },
                Err(error) => error,
            };
            let healthy = match &error {
                RpcError::Unreachable(_) => false,
                RpcError::Logger(LogError::Invalid(_)) => true,
                _ => self.logger.ping().await.is_ok(),
            };
            if healthy {
                failures += 1;
            }
            match after_failure(&error, healthy, failures, self.max_attempts) {
                Next::DeadLetter(reason) => return Verdict::DeadLetter { reason },
                Next::WaitForLogger if !waited => {
                    waited = true;
                    tracing::warn!(%event_id, %error, "the logger is unavailable; holding the event until it is back");
                }
                Next::WaitForLogger => tracing::debug!(%event_id, %error, "still waiting for the logger"),
                Next::Retry => tracing::warn!(%event_id, %error, failures, "write failed; retrying"),
            }
            tokio::time::sleep(delays.next().unwrap_or(self.backoff.max_delay)).await;
        }
    }
}

/// The start of a body, as text, for a log line.
fn shown(body: &[u8]) -> String {
    let end = body.len().min(SHOWN_BODY_BYTES);
    let mut text = String::from_utf8_lossy(&body[..end]).into_owned();
    if body.len() > end {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn valid() -> serde_json::Value {
        serde_json::json!({
            "id": "67e55044-10b1-426f-9247-bb680e5fe0c8",
            "name": "event",
            "data": "some data",
            "level": "WARNING",
            "created_at": "2024-05-01T12:00:00Z",
        })
    }

    #[test]
    fn a_well_formed_event_parses() {
        let event = parse(valid().to_string().as_bytes()).unwrap();
        assert_eq!(event.name, "event");
        assert_eq!(event.level, contract::log::Level::Warning);
    }

    #[test]
    fn malformed_messages_are_refused_with_a_reason() {
        let without = |field: &str| {
            let mut body = valid();
            body.as_object_mut().unwrap().remove(field);
            body.to_string()
        };
        let with = |field: &str, value: serde_json::Value| {
            let mut body = valid();
            body[field] = value;
            body.to_string()
        };
        let cases = [
            ("not json at all".to_owned(), "not a log event", "plain text"),
            ("{\"id\":".to_owned(), "not a log event", "truncated JSON"),
            ("[1, 2]".to_owned(), "not a log event", "a JSON array"),
            (without("id"), "missing field `id`", "no id"),
            (without("name"), "missing field `name`", "no name"),
            (without("data"), "missing field `data`", "no data"),
            (with("id", "not-a-uuid".into()), "not a log event", "an id that is not a UUID"),
            (with("level", "LOUD".into()), "not a log event", "an unknown level"),
            (with("name", "".into()), "invalid log event", "an empty name"),
            (with("data", "x".repeat(64 * 1024 + 1).into()), "invalid log event", "data over the limit"),
        ];
        for (body, expected, why) in cases {
            let reason = parse(body.as_bytes()).unwrap_err();
            assert!(reason.contains(expected), "{why}: {reason}");
        }
    }

    #[test]
    fn failures_are_waited_out_retried_or_dead_lettered_by_the_rule() {
        let unreachable = RpcError::Unreachable("connection refused".into());
        let timeout = RpcError::Timeout(Duration::from_secs(5));
        let unavailable = RpcError::Logger(LogError::Unavailable("mongo down".into()));
        let invalid = RpcError::Logger(LogError::Invalid("name: must not be empty".into()));
        let cases = [
            (&unreachable, false, 0, Next::WaitForLogger, "logger down"),
            (&unreachable, false, 5, Next::WaitForLogger, "an outage never counts, however long"),
            (&timeout, false, 0, Next::WaitForLogger, "timeout and ping fails too: an outage"),
            (&unavailable, false, 0, Next::WaitForLogger, "MongoDB down behind the logger"),
            (&timeout, true, 1, Next::Retry, "timeout but the logger answers: this event's problem"),
            (&unavailable, true, 4, Next::Retry, "below the limit"),
            (&timeout, true, 5, Next::DeadLetter(String::new()), "the limit reached"),
            (&invalid, true, 1, Next::DeadLetter(String::new()), "refused by the logger: at once"),
        ];
        for (error, healthy, failures, expected, why) in cases {
            let next = after_failure(error, healthy, failures, 5);
            match (&next, &expected) {
                (Next::DeadLetter(reason), Next::DeadLetter(_)) => assert!(!reason.is_empty(), "{why}"),
                _ => assert_eq!(next, expected, "{why}"),
            }
        }
    }

    #[test]
    fn a_long_body_is_shown_cut() {
        let shown = shown(&[b'x'; 1000]);
        assert_eq!(shown.chars().count(), SHOWN_BODY_BYTES + 1);
        assert!(shown.ends_with('…'));
    }
}
