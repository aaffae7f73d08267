//! Log entries and the logger's errors, used by the logger (server) and by the broker and the
//! listener (clients); the RPC trait over them is in `crate::rpc`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::validate::{self, ValidationError};

/// How many entries `recent` returns when the caller does not say.
pub const DEFAULT_RECENT: u32 = 20;
/// The most entries one `recent` call returns, whatever the caller asks.
pub const MAX_RECENT: u32 = 100;
/// The most entries one `write_many` call takes.
pub const MAX_BATCH: usize = 1_000;

/// Severity; also the last part of an event's routing key (`log.INFO`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    #[default]
    #[serde(alias = "info")]
    Info,
    #[serde(alias = "warning", alias = "WARN", alias = "warn")]
    Warning,
    #[serde(alias = "error")]
    Error,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Info, Level::Warning, Level::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{"name", "data", "level"?}`: the payload of the `log` and `event` actions and of `POST /log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogPayload {
    pub name: String,
    pub data: String,
    #[serde(default)]
    pub level: Option<Level>,
}

impl LogPayload {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate::bounded("name", &self.name, validate::MAX_LOG_NAME_BYTES)?;
        if self.data.len() > validate::MAX_LOG_DATA_BYTES {
            return Err(ValidationError::new(
                "data",
                format!("must be at most {} bytes", validate::MAX_LOG_DATA_BYTES),
            ));
        }
        Ok(())
    }

    /// The entry to store; `event_id` is set when it came through RabbitMQ.
    pub fn into_entry(self, event_id: Option<Uuid>) -> LogEntry {
        LogEntry { name: self.name, data: self.data, level: self.level.unwrap_or_default(), event_id }
    }
}

/// One entry to store, as sent over RPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub name: String,
    pub data: String,
    pub level: Level,
    /// The id of the event this entry came from; stored at most once.
    pub event_id: Option<Uuid>,
}

impl LogEntry {
    pub fn validate(&self) -> Result<(), ValidationError> {
        LogPayload { name: self.name.clone(), data: self.data.clone(), level: Some(self.level) }.validate()
    }
}

/// A stored entry, newest first in listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredEntry {
    /// The MongoDB ObjectId, as 24 hex digits.
    pub id: String,
    pub name: String,
    pub data: String,
    pub level: Level,
    pub event_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a logger call can fail with; each variant is something the caller can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LogError {
    /// The request was refused; nothing was stored.
    #[error("invalid log entry: {0}")]
    Invalid(String),
    /// No entry has that id.
    #[error("log entry not found: {0}")]
    NotFound(String),
    /// MongoDB could not be reached or timed out; retrying later may succeed.
    #[error("log store unavailable: {0}")]
    Unavailable(String),
}

impl From<ValidationError> for LogError {
    fn from(error: ValidationError) -> Self {
        LogError::Invalid(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_default_to_info_and_accept_lowercase() {
        let p: LogPayload = serde_json::from_str(r#"{"name":"event","data":"Some kind of data"}"#).unwrap();
        assert_eq!(p.level, None);
        assert_eq!(p.into_entry(None).level, Level::Info);
        let p: LogPayload = serde_json::from_str(r#"{"name":"n","data":"d","level":"warning"}"#).unwrap();
        assert_eq!(p.level, Some(Level::Warning));
        assert!(serde_json::from_str::<LogPayload>(r#"{"name":"n","data":"d","level":"LOUD"}"#).is_err());
    }

    #[test]
    fn payloads_are_bounded() {
        let ok = LogPayload { name: "n".into(), data: String::new(), level: None };
        assert!(ok.validate().is_ok());
        let cases = [
            (LogPayload { name: "".into(), data: "d".into(), level: None }, "name"),
            (LogPayload { name: "x".repeat(257), data: "d".into(), level: None }, "name"),
            (LogPayload { name: "n".into(), data: "x".repeat(64 * 1024 + 1), level: None }, "data"),
        ];
        for (payload, field) in cases {
            assert_eq!(payload.validate().unwrap_err().field, field);
        }
    }
}
