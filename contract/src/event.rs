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

/// The level a routing key names (`log.WARNING` → WARNING), by the same names and aliases as
/// a level in JSON; `None` for a key of another shape or an unknown level.
pub fn level_of_routing_key(key: &str) -> Option<Level> {
    use serde::de::IntoDeserializer;
    let name = key.strip_prefix("log.")?;
    Level::deserialize(IntoDeserializer::<serde::de::value::Error>::into_deserializer(name)).ok()
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
    /// The `sub` of the publisher's caller's token; absent without one, and in the events of
    /// publishers that predate it (the Go original's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

impl LogEvent {
    /// A new event with a fresh id, stamped now, made for the token subject `sub`.
    pub fn new(payload: LogPayload, sub: Option<String>) -> Self {
        Self {
            id: Uuid::new_v4(),
            level: payload.level.unwrap_or_default(),
            name: payload.name.into_inner(),
            data: payload.data.into_inner(),
            created_at: Utc::now(),
            sub,
        }
    }

    pub fn routing_key(&self) -> String {
        routing_key(self.level)
    }

    /// Checks the same limits as a direct `log` action.
    pub fn validate(&self) -> Result<(), ValidationError> {
        log::check_fields(&self.name, &self.data, self.sub.as_deref())
    }

    /// The entry the listener asks the logger to store.
    pub fn into_entry(self) -> LogEntry {
        LogEntry {
            name: self.name,
            data: self.data,
            level: self.level,
            event_id: Some(self.id),
            sub: self.sub,
            trace_id: None,
        }
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
    fn a_routing_key_names_its_level() {
        for level in Level::ALL {
            assert_eq!(level_of_routing_key(&routing_key(level)), Some(level));
        }
        let cases = [
            ("log.warning", Some(Level::Warning)),
            ("log.DEBUG", None),
            ("log.", None),
            ("INFO", None),
            ("logs.INFO", None),
        ];
        for (key, expected) in cases {
            assert_eq!(level_of_routing_key(key), expected, "{key}");
        }
    }

    #[test]
    fn an_event_round_trips_through_json_and_keeps_its_id() {
        let payload = LogPayload { name: "event".parse().unwrap(), data: "d".parse().unwrap(), level: None };
        let event = LogEvent::new(payload.clone(), Some("7".into()));
        let json = serde_json::to_string(&event).unwrap();
        let back: LogEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
        let entry = back.into_entry();
        assert_eq!(entry.event_id, Some(event.id));
        assert_eq!(entry.level, Level::Info);
        assert_eq!(entry.sub.as_deref(), Some("7"), "the subject travels to the entry");
        let anonymous = serde_json::to_value(LogEvent::new(payload, None)).unwrap();
        assert!(anonymous.get("sub").is_none(), "no `sub` key without a token: {anonymous}");
    }
}
