//! The logger's RPC contract (feature `rpc`): one `#[tarpc::service]` trait that the logger
//! implements and the shared client in `service_kit::logger_client` calls. Behind a feature so
//! that crates which only need the wire types (the frontend, authentication, the mailer) do not
//! link tarpc.

use crate::log::{LogEntry, LogError, StoredEntry};
#[cfg(doc)]
use crate::log::{MAX_BATCH, MAX_RECENT};

/// The logger's RPC service. The server lives in `logger/`; clients use the generated
/// `LoggerClient` through the shared reconnecting wrapper in `service-kit`.
#[tarpc::service]
pub trait Logger {
    /// Stores one entry and returns its id. An entry whose `event_id` is already stored is
    /// not stored again: the existing id is returned.
    async fn write_log(entry: LogEntry) -> Result<String, LogError>;
    /// Stores many entries (at most [`MAX_BATCH`]) and returns their ids in order.
    async fn write_many(entries: Vec<LogEntry>) -> Result<Vec<String>, LogError>;
    /// The newest entries first, at most `limit` (capped at [`MAX_RECENT`]), older than the
    /// entry `before` when given (pagination), only those of the trace `trace_id` when given
    /// (32 lowercase hex digits, [`crate::log::TraceId`]'s rule; else `LogError::Invalid`).
    async fn recent(limit: u32, before: Option<String>, trace_id: Option<String>)
    -> Result<Vec<StoredEntry>, LogError>;
    /// One entry by id.
    async fn get(id: String) -> Result<StoredEntry, LogError>;
    /// Succeeds when the logger can reach MongoDB: readiness for its clients.
    async fn ping() -> Result<(), LogError>;
}
