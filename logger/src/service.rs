//! What the logger does, once, for both front doors (tarpc and HTTP): check the input, then
//! write through a grouping writer or read from the store.
//!
//! # Bulkheads
//!
//! Callers fall into three classes, and each has its own share of the store, so that a
//! listener draining a backlog cannot starve the others:
//!
//! - **queued writes**: entries that came through RabbitMQ (they carry an event id; only the
//!   listener sets one) and every `write_many` call (a batch is bulk by nature). They go
//!   through a writer of their own.
//! - **interactive writes**: entries without an event id (the broker's `log` action over RPC,
//!   `POST /log`), through a second writer. Each writer writes at most `BATCH_CONCURRENCY`
//!   groups at once and queues a bounded number of writes, so a backlog queues behind the
//!   listener's own earlier writes, never in front of an interactive one.
//! - **reads** (`recent`, `get`, over RPC and HTTP): at most [`READ_CONCURRENCY`] at once; a
//!   read that finds no free slot within the store's operation timeout fails as unavailable
//!   rather than piling up.
//!
//! The class comes from what the call is, not from a header the caller sends: the listener's
//! client needs no change, and no caller can jump the queue by declaring itself interactive.
//! Semaphores bound concurrency rather than setting priorities: the store (one SecantusDB
//! thread in the tests) serves whatever reaches it in order, so what matters is that the
//! queued class never has more than its groups in flight, and that reads do not wait behind
//! its queue. Together the classes hold at most `2 × BATCH_CONCURRENCY + READ_CONCURRENCY`
//! connections, below the driver's default pool of 10 with the defaults (2 × 2 + 4), which
//! leaves a connection for `/ready`'s ping. The ping itself is in no class: it reports
//! whether the store answers, not whether a class has room.

use std::sync::Arc;
use std::time::Duration;

use contract::log::{LogEntry, LogError, MAX_BATCH, RecentLimit, StoredEntry, TraceId};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::batch::{WriteStats, Writer};
use crate::settings::BatchSettings;
use crate::store::{LogDocument, LogStore};

/// Reads that may use the store at once.
pub const READ_CONCURRENCY: usize = 4;

/// The logger's operations, what both its front doors call; cheap to clone.
#[derive(Clone)]
pub struct LogService {
    store: LogStore,
    /// Entries without an event id, one at a time.
    interactive: Writer,
    /// Entries with an event id, and batches.
    queued: Writer,
    reads: Arc<Semaphore>,
    /// The most a read waits for a slot, and a write's deadline when its caller gives none.
    op_timeout: Duration,
    stats: Arc<WriteStats>,
}

impl LogService {
    /// The service over `store`, with a writer per write class, both grouping by `batch`.
    pub fn new(store: LogStore, batch: &BatchSettings, op_timeout: Duration) -> Self {
        let stats = Arc::new(WriteStats::default());
        Self {
            interactive: Writer::start(store.clone(), batch, stats.clone()),
            queued: Writer::start(store.clone(), batch, stats.clone()),
            store,
            reads: Arc::new(Semaphore::new(READ_CONCURRENCY)),
            op_timeout,
            stats,
        }
    }

    /// Stores one entry and returns its id; for an event id already stored, that entry's id.
    /// `deadline`: when the caller stops waiting (none: the store's operation timeout from now).
    #[tracing::instrument(name = "write_log", skip_all, fields(name = entry.name.as_str(), event_id = ?entry.event_id))]
    pub async fn write(&self, entry: LogEntry, deadline: Option<Instant>) -> Result<String, LogError> {
        entry.validate()?;
        let writer = if entry.event_id.is_some() { &self.queued } else { &self.interactive };
        let mut ids = writer.write(vec![LogDocument::new(entry)], self.deadline(deadline)).await?;
        let id = ids.pop().ok_or_else(|| LogError::Unavailable("the store returned no id".into()))?;
        tracing::debug!(%id, "entry stored");
        Ok(id)
    }

    /// Stores up to [`MAX_BATCH`] entries; nothing is stored when any of them is invalid.
    #[tracing::instrument(name = "write_many", skip_all, fields(count = entries.len()))]
    pub async fn write_many(&self, entries: Vec<LogEntry>, deadline: Option<Instant>) -> Result<Vec<String>, LogError> {
        if entries.len() > MAX_BATCH {
            return Err(LogError::Invalid(format!("at most {MAX_BATCH} entries per call, got {}", entries.len())));
        }
        for (index, entry) in entries.iter().enumerate() {
            entry.validate().map_err(|e| LogError::Invalid(format!("entries[{index}]: {e}")))?;
        }
        self.queued.write(entries.into_iter().map(LogDocument::new).collect(), self.deadline(deadline)).await
    }

    /// Newest first: `limit` entries at most, by the contract's [`RecentLimit`] rule; only the
    /// trace `trace_id`'s when given, by [`TraceId`]'s.
    #[tracing::instrument(name = "recent", skip(self))]
    pub async fn recent(
        &self,
        limit: Option<u32>,
        before: Option<String>,
        trace_id: Option<String>,
    ) -> Result<Vec<StoredEntry>, LogError> {
        let limit = RecentLimit::or_default(limit).map_err(|problem| problem.at("limit"))?;
        let trace_id = trace_id.map(TraceId::parse).transpose().map_err(|problem| problem.at("trace_id"))?;
        let _slot = self.read_slot().await?;
        self.store.recent(limit.get(), before.as_deref(), trace_id.as_ref()).await
    }

    #[tracing::instrument(name = "get", skip(self))]
    pub async fn get(&self, id: &str) -> Result<StoredEntry, LogError> {
        let _slot = self.read_slot().await?;
        self.store.get(id).await
    }

    /// What the writers did so far (grouping figures), both classes together.
    pub fn write_stats(&self) -> Arc<WriteStats> {
        self.stats.clone()
    }

    /// Succeeds when MongoDB answers within its ping bound; in no class (see the module doc).
    pub async fn ping(&self) -> Result<(), LogError> {
        self.store.ping().await
    }

    fn deadline(&self, given: Option<Instant>) -> Instant {
        given.unwrap_or_else(|| Instant::now() + self.op_timeout)
    }

    /// A place among the reads, waited for at most the store's operation timeout.
    async fn read_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, LogError> {
        match tokio::time::timeout(self.op_timeout, self.reads.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(LogError::Unavailable("the logger is shutting down".into())),
            Err(_) => Err(LogError::Unavailable(format!(
                "the store is busy: {READ_CONCURRENCY} reads in progress for {:?}",
                self.op_timeout
            ))),
        }
    }
}
