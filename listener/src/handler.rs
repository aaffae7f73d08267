//! What happens to one delivery: parse and check it, store it through the logger, then ack it
//! or send it to the dead-letter queue. Nothing is acknowledged before the logger confirmed
//! the write.
//!
//! Failures, and why each is treated so (the rule is [`after_failure`]):
//! - Not JSON, missing fields, or outside the contract's limits: no retry can fix it, so it is
//!   rejected (`requeue=false`) to the dead-letter queue at once, and logged.
//! - Refused by the logger (`LogError::Invalid`): the same, for the same reason. These are the
//!   only dead letters of a valid-looking event.
//! - The logger is unreachable, does not answer within the timeout (its deadline passed), or
//!   answers `Unavailable` (MongoDB down, or too slow for its own bound): an outage or an
//!   overload, not this event's fault. The event is held (unacked) and the write retried with
//!   a capped backoff for as long as it lasts; these tries never count toward `max_attempts`.
//!   Counting them dead-lettered valid events whenever a backlog saturated the store (the
//!   logger answered its `ping`, so slow writes looked like this event's fault), and
//!   dead-lettering or requeueing during a logger restart would empty the queue into the
//!   dead-letter queue or spin every event at full speed. Holding costs at most the prefetch
//!   window of unacked messages; the rest wait in the queue, and if this replica dies RabbitMQ
//!   redelivers what it held.
//! - Any other failure (an answer no write should get): retried with backoff, and
//!   dead-lettered after `max_attempts`.
//!
//! Writes in flight to the logger are capped (`MAX_IN_FLIGHT_WRITES`), so that a backlog is
//! drained at the store's pace: more concurrent writes than the logger stores in a round only
//! queue in the logger, time out there and come back as retries, multiplying the load.
//!
//! A write may reach MongoDB and its answer be lost; the retry (or a redelivery) then sends the
//! same event id again, and the logger stores an event id at most once.

use std::sync::Arc;

use contract::event::LogEvent;
use contract::log::{LogEntry, LogError};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use service_kit::logger_client::{LoggerRpc, RpcError};
use service_kit::metrics::{counter, gauge};
use service_kit::retry::RetryPolicy;
use tokio::sync::Semaphore;

use crate::go_original::{self, Origin};
use crate::metrics;

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
    /// The logger or its store is down or overloaded: hold the event and try again later,
    /// without counting the attempt.
    Hold,
    /// The write failed for another reason: count it, and try again.
    Retry,
}

/// The rule of the module docs. `failures` counts the failed writes that count, this one
/// included if it does; [`counts`] says which do.
pub fn after_failure(error: &RpcError, failures: u32, max_attempts: u32) -> Next {
    match error {
        RpcError::Logger(LogError::Invalid(reason)) => Next::DeadLetter(format!("the logger refused it: {reason}")),
        _ if !counts(error) => Next::Hold,
        _ if failures >= max_attempts => Next::DeadLetter(format!("{failures} failed writes, the last: {error}")),
        _ => Next::Retry,
    }
}

/// Whether a failed write counts toward `max_attempts`: not when the logger or its store is
/// unreachable, late or unavailable, for that says nothing about the event.
pub fn counts(error: &RpcError) -> bool {
    !matches!(error, RpcError::Unreachable(_) | RpcError::Timeout(_) | RpcError::Logger(LogError::Unavailable(_)))
}

/// Reads an event off the wire and checks it against the contract.
pub fn parse(body: &[u8]) -> Result<LogEvent, String> {
    let event: LogEvent = serde_json::from_slice(body)
        .map_err(|e| format!("not a log event: {}", contract::validate::without_values(&e.to_string())))?;
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
    /// Failed writes that count (see [`counts`]) before an event is dead-lettered.
    max_attempts: u32,
    /// One permit per write in flight to the logger, shared by every delivery task.
    in_flight: Arc<Semaphore>,
    /// The delays between writes of one event; without end, `max_attempts` decides when to stop.
    backoff: RetryPolicy,
}

impl service_kit::amqp::consumer::Handler for Handler {
    fn handle(&self, delivery: Delivery) -> impl std::future::Future<Output = ()> + Send {
        // The inherent method below.
        Handler::handle(self, delivery)
    }
}

impl Handler {
    pub fn new(logger: LoggerRpc, max_attempts: u32, max_in_flight_writes: usize, backoff: RetryPolicy) -> Self {
        let in_flight = Arc::new(Semaphore::new(max_in_flight_writes.max(1)));
        Self { logger, max_attempts: max_attempts.max(1), in_flight, backoff }
    }

    /// Stores the delivery's event and acks it, or rejects it to the dead-letter queue. An ack
    /// or reject that fails (the channel closed meanwhile) leaves the message to RabbitMQ,
    /// which redelivers it; the logger stores its event id once. Runs inside the consumer's
    /// delivery span (routing key, delivery tag, and the publisher's trace).
    #[tracing::instrument(name = "listener.delivery", skip_all, fields(redelivered = delivery.redelivered))]
    pub async fn handle(&self, delivery: Delivery) {
        let _in_hand = InHand::enter(delivery.redelivered);
        match self.process(&delivery.data, &Origin::of(delivery.routing_key.as_str(), &delivery.properties)).await {
            Verdict::Stored { id } => {
                tracing::debug!(%id, "stored");
                counter!(metrics::STORED).increment(1);
                if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
                    tracing::warn!(%error, "cannot ack a stored event; RabbitMQ will redeliver it");
                }
            }
            Verdict::DeadLetter { reason } => {
                tracing::warn!(%reason, body = %shown(&delivery.data), "dead-lettering the message");
                counter!(metrics::DEAD_LETTERED).increment(1);
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
        // The delivery span's trace: the one of the request that published the event.
        let entry: LogEntry = event.into_entry().in_trace(service_kit::trace::current_trace_id());
        let mut failures = 0;
        let mut held = false;
        let mut delays = self.backoff.delays();
        loop {
            let written = {
                // Held only for the call, not for the backoff: a waiting event blocks no other.
                let _permit = self.in_flight.acquire().await.expect("the semaphore is never closed");
                self.logger.write_log(entry.clone()).await
            };
            let error = match written {
                Ok(id) => return Verdict::Stored { id },
                Err(error) => error,
            };
            if counts(&error) {
                failures += 1;
            }
            match after_failure(&error, failures, self.max_attempts) {
                Next::DeadLetter(reason) => return Verdict::DeadLetter { reason },
                Next::Hold if !held => {
                    held = true;
                    counter!(metrics::HELD).increment(1);
                    tracing::warn!(%event_id, %error, "the logger is unavailable or overloaded; holding the event");
                }
                Next::Hold => tracing::debug!(%event_id, %error, "still holding the event"),
                Next::Retry => tracing::warn!(%event_id, %error, failures, "write failed; retrying"),
            }
            tokio::time::sleep(delays.next().unwrap_or(self.backoff.max_delay)).await;
        }
    }
}

/// A delivery in [`metrics::IN_FLIGHT`] until its task ends (acked, rejected or dropped with
/// its session); counted as received, and as redelivered when it is.
struct InHand;

impl InHand {
    fn enter(redelivered: bool) -> Self {
        counter!(metrics::RECEIVED).increment(1);
        if redelivered {
            counter!(metrics::REDELIVERED).increment(1);
        }
        gauge!(metrics::IN_FLIGHT).increment(1.0);
        InHand
    }
}

impl Drop for InHand {
    fn drop(&mut self) {
        gauge!(metrics::IN_FLIGHT).decrement(1.0);
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
        let reason = parse(with("level", "L".repeat(10_000).into()).as_bytes()).unwrap_err();
        assert!(reason.len() < 300 && reason.contains("... (10000 bytes)"), "a long level, named short: {reason}");
    }

    #[test]
    fn outages_and_overload_are_held_and_only_refusals_or_other_failures_dead_letter() {
        let unreachable = RpcError::Unreachable("connection refused".into());
        let timeout = RpcError::Timeout(Duration::from_secs(5));
        let unavailable = RpcError::Logger(LogError::Unavailable("mongo down".into()));
        let invalid = RpcError::Logger(LogError::Invalid("name: must not be empty".into()));
        let other = RpcError::Logger(LogError::NotFound("no such entry".into()));
        let cases = [
            (&unreachable, 0, Next::Hold, "logger down"),
            (&unreachable, 5, Next::Hold, "an outage never counts, however long"),
            (&timeout, 0, Next::Hold, "no answer in time: the logger is slow or gone"),
            (&timeout, 5, Next::Hold, "a saturated store: timeouts never count"),
            (&unavailable, 0, Next::Hold, "MongoDB down or late behind the logger"),
            (&unavailable, 9, Next::Hold, "never counts either"),
            (&other, 4, Next::Retry, "another failure, below the limit"),
            (&other, 5, Next::DeadLetter(String::new()), "another failure, the limit reached"),
            (&invalid, 0, Next::DeadLetter(String::new()), "refused by the logger: at once"),
        ];
        for (error, failures, expected, why) in cases {
            let next = after_failure(error, failures, 5);
            match (&next, &expected) {
                (Next::DeadLetter(reason), Next::DeadLetter(_)) => assert!(!reason.is_empty(), "{why}"),
                _ => assert_eq!(next, expected, "{why}"),
            }
        }
        assert!(!counts(&timeout) && !counts(&unavailable) && !counts(&unreachable), "outages do not count");
        assert!(counts(&other) && counts(&invalid), "the rest does");
    }

    #[test]
    fn a_long_body_is_shown_cut() {
        let shown = shown(&[b'x'; 1000]);
        assert_eq!(shown.chars().count(), SHOWN_BODY_BYTES + 1);
        assert!(shown.ends_with('…'));
    }
}
