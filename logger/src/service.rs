//! What the logger does, once, for both front doors (tarpc and HTTP): check the input, then
//! write through the grouping writer or read from the store.

use contract::log::{LogEntry, LogError, MAX_BATCH, RecentLimit, StoredEntry};

use crate::batch::Writer;
use crate::store::{LogDocument, LogStore};

/// The logger's operations, what both its front doors call; cheap to clone.
#[derive(Clone)]
pub struct LogService {
    store: LogStore,
    writer: Writer,
}

impl LogService {
    pub fn new(store: LogStore, writer: Writer) -> Self {
        Self { store, writer }
    }

    /// Stores one entry and returns its id; for an event id already stored, that entry's id.
    #[tracing::instrument(name = "write_log", skip_all, fields(name = %entry.name, event_id = ?entry.event_id))]
    pub async fn write(&self, entry: LogEntry) -> Result<String, LogError> {
        entry.validate()?;
        let mut ids = self.writer.write(vec![LogDocument::new(entry)]).await?;
        ids.pop().ok_or_else(|| LogError::Unavailable("the store returned no id".into()))
    }

    /// Stores up to [`MAX_BATCH`] entries; nothing is stored when any of them is invalid.
    #[tracing::instrument(name = "write_many", skip_all, fields(count = entries.len()))]
    pub async fn write_many(&self, entries: Vec<LogEntry>) -> Result<Vec<String>, LogError> {
        if entries.len() > MAX_BATCH {
            return Err(LogError::Invalid(format!("at most {MAX_BATCH} entries per call, got {}", entries.len())));
        }
        for (index, entry) in entries.iter().enumerate() {
            entry.validate().map_err(|e| LogError::Invalid(format!("entries[{index}]: {e}")))?;
        }
        self.writer.write(entries.into_iter().map(LogDocument::new).collect()).await
    }

    /// Newest first: `limit` entries at most, by the contract's [`RecentLimit`] rule.
    #[tracing::instrument(name = "recent", skip(self))]
    pub async fn recent(&self, limit: Option<u32>, before: Option<String>) -> Result<Vec<StoredEntry>, LogError> {
        let limit = RecentLimit::or_default(limit).map_err(|problem| problem.at("limit"))?;
        self.store.recent(limit.get(), before.as_deref()).await
    }

    #[tracing::instrument(name = "get", skip(self))]
    pub async fn get(&self, id: &str) -> Result<StoredEntry, LogError> {
        self.store.get(id).await
    }

    /// What the writer did so far (grouping figures).
    pub fn write_stats(&self) -> std::sync::Arc<crate::batch::WriteStats> {
        self.writer.stats()
    }

    /// Succeeds when MongoDB answers.
    pub async fn ping(&self) -> Result<(), LogError> {
        self.store.ping().await
    }
}
