//! The AMQP event: published by the broker, consumed by the listener.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::log::{self, Level, LogEntry, LogPayload};
use crate::validate::ValidationError;

/// The durable topic exchange every event goes to.
pub const EXCHANGE: &str = "logs_topic";
/// The one named durable queue the listener replicas share (`QUEUE_NAME` overrides it).
pub const DEFAULT_QUEUE: &str = "logs";
/// The queue's binding: every level.
pub const BINDING_KEY: &str = "log.*";
/// Content type of the message body.
pub const CONTENT_TYPE: &str = "application/json";

/// The routing key of an event of this level: `log.INFO`, `log.WARNING`, `log.ERROR`.
pub fn routing_key(level: Level) -> String {
    format!("log.{}", level.as_str())
}

/// `{"id", "name", "data", "level", "created_at"}`: the body of every event message. Plain
/// fields, checked by [`LogEvent::validate`] with the rules of a log payload (see
/// [`crate::validate`] for why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEvent {
    /// Unique per event; the logger stores an id at most once, so redelivery never duplicates.
    pub id: Uuid,
    pub name: String,
    pub data: String,
    pub level: Level,
    pub created_at: DateTime<Utc>,
}

impl LogEvent {
    /// A new event with a fresh id, stamped now.
    pub fn new(payload: LogPayload) -> Self {
        Self {
            id: Uuid::new_v4(),
            level: payload.level.unwrap_or_default(),
            name: payload.name.into_inner(),
            data: payload.data.into_inner(),
            created_at: Utc::now(),
        }
    }

    pub fn routing_key(&self) -> String {
        routing_key(self.level)
    }

    /// Checks the same limits as a direct `log` action.
    pub fn validate(&self) -> Result<(), ValidationError> {
        log::check_fields(&self.name, &self.data)
    }

    /// The entry the listener asks the logger to store.
    pub fn into_entry(self) -> LogEntry {
        LogEntry { name: self.name, data: self.data, level: self.level, event_id: Some(self.id) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys_follow_the_level() {
        assert_eq!(routing_key(Level::Info), "log.INFO");
        assert_eq!(routing_key(Level::Warning), "log.WARNING");
        assert_eq!(routing_key(Level::Error), "log.ERROR");
    }

    #[test]
    fn an_event_round_trips_through_json_and_keeps_its_id() {
        let event =
            LogEvent::new(LogPayload { name: "event".parse().unwrap(), data: "d".parse().unwrap(), level: None });
        let json = serde_json::to_string(&event).unwrap();
        let back: LogEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
        let entry = back.into_entry();
        assert_eq!(entry.event_id, Some(event.id));
        assert_eq!(entry.level, Level::Info);
    }
}
