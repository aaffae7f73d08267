//! MongoDB access: the `logs` collection, its indexes, and the few operations the service needs.
//!
//! Every operation is bounded: finding a server by `connect_timeout` (the driver's server
//! selection), the whole operation by `op_timeout`. A store that is down fails a request in
//! about two seconds with [`LogError::Unavailable`]; the driver reconnects on its own, so writes
//! succeed again once MongoDB is back, without a restart. A ping has a shorter bound of its own,
//! [`PING_TIMEOUT`], so that `/ready` names a store that hangs rather than timing out itself.
//!
//! Writes survive a broken connection: every document has its `_id` before it is sent
//! ([`LogDocument::new`]), so [`LogStore::insert_all`] can send the same documents again after a
//! network error (the driver retries writes only against replica sets, not a standalone
//! server). A retried insert that had in fact been stored meets the duplicate key on `_id` (or
//! on `event_id`), which counts as stored, exactly as duplicate event ids always did. Retries
//! follow [`WRITE_RETRY`] and stop at the caller's deadline. A timeout is not retried: a slow
//! store is overloaded, and sending again would only add to its load.
//!
//! Retention (`LOG_RETENTION`) is a TTL index on `created_at`, [`RETENTION_INDEX`]: MongoDB's TTL
//! monitor deletes what is older, every 60 s by default (SecantusDB runs the same sweeper, same
//! period: `storage.ttl_sweep_seconds`), so the store stays bounded without work here. It is an
//! index of its own because TTL indexes are single-field and the listing needs
//! (`created_at`, `_id`). At start the index is made to match the setting: created, retuned in
//! place with `collMod` when the retention changed (no rebuild, no failure), dropped when off.
//! SecantusDB's sweeper (0.7.0b3) reads the whole collection, under its storage lock, on each
//! pass: with 300k entries writes slowed by about a fifth (the ignored test
//! `write_rate_with_300k_entries_stored_vs_empty`); mongod deletes through the index instead.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use contract::log::{EntryId, Level, LogEntry, LogError, StoredEntry, TraceId};
use contract::validate::Problem;
use futures::TryStreamExt;
use mongodb::bson::{self, Document, doc, oid::ObjectId};
use mongodb::error::{ErrorKind, InsertManyError, RETRYABLE_WRITE_ERROR};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, IndexModel};
use serde::{Deserialize, Serialize};
use service_kit::retry::RetryPolicy;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::metrics;
use crate::settings::MongoSettings;

/// The collection, as in the Go original.
pub const COLLECTION: &str = service_kit::wiring::MONGO_COLLECTION;
/// MongoDB's duplicate key error.
const DUPLICATE_KEY: i32 = 11000;
/// The TTL index that enforces `LOG_RETENTION` (see the module doc).
pub const RETENTION_INDEX: &str = "retention";
/// An index of that name exists with other options (another logger, another retention).
const INDEX_OPTIONS_CONFLICT: i32 = 85;
/// How long a ping may take: below `/ready`'s own bound ([`service_kit::health::CHECK_TIMEOUT`]),
/// so that a store that hangs is reported by name and bound, not as a check that timed out.
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);
const _: () = assert!(PING_TIMEOUT.as_millis() < service_kit::health::CHECK_TIMEOUT.as_millis());
/// Resending a write after a broken connection: quickly at first (the driver reconnects within
/// milliseconds when the server is there), a few times; the caller's deadline stops it sooner.
pub const WRITE_RETRY: RetryPolicy =
    RetryPolicy { min_delay: Duration::from_millis(20), max_delay: Duration::from_millis(500), max_retries: Some(5) };

/// A stored entry as MongoDB holds it: `_id, name, data, level, created_at, updated_at`, plus
/// `event_id` (a hyphenated UUID) for entries that came through RabbitMQ. Entries without an
/// event id have no such field at all, which keeps them out of the sparse unique index
/// (a `null` would be indexed, and two of them would collide).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogDocument {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub name: String,
    /// Absent in documents written by other programs: read as empty.
    #[serde(default)]
    pub data: String,
    /// Stored as `"INFO"`, `"WARNING"`, `"ERROR"`; absent (the Go original's documents) reads as INFO.
    #[serde(default)]
    pub level: Level,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The `sub` of the caller's token; absent without one (and in older documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The trace of the request that caused the entry; absent without one (and in older
    /// documents), which keeps the entry out of the sparse trace index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    pub created_at: bson::DateTime,
    pub updated_at: bson::DateTime,
}

impl LogDocument {
    /// A new document for `entry`, with a fresh id and both timestamps set to now.
    pub fn new(entry: LogEntry) -> Self {
        let now = bson::DateTime::now();
        Self {
            id: ObjectId::new(),
            name: entry.name,
            data: entry.data,
            level: entry.level,
            event_id: entry.event_id.map(|id| id.hyphenated().to_string()),
            sub: entry.sub,
            trace_id: entry.trace_id,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn into_stored(self) -> StoredEntry {
        let event_id = self.event_id.and_then(|raw| match uuid::Uuid::parse_str(&raw) {
            Ok(id) => Some(id),
            Err(error) => {
                tracing::warn!(entry = %self.id, %raw, %error, "stored event_id is not a UUID; shown as none");
                None
            }
        });
        StoredEntry {
            id: self.id.to_hex(),
            name: self.name,
            data: self.data,
            level: self.level,
            event_id,
            sub: self.sub,
            trace_id: self.trace_id,
            created_at: to_chrono(self.created_at),
            updated_at: to_chrono(self.updated_at),
        }
    }
}

fn to_chrono(at: bson::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or_default()
}

/// An entry id as clients send it, by the contract's rule ([`EntryId`]), else [`LogError::Invalid`]
/// naming `field`.
pub fn parse_id(field: &str, id: &str) -> Result<ObjectId, LogError> {
    let invalid = |problem: Problem| LogError::Invalid(problem.at(field).to_string());
    let id = EntryId::parse(id.to_owned()).map_err(invalid)?;
    ObjectId::parse_str(id.as_str()).map_err(|_| invalid(Problem::new("is not an ObjectId")))
}

/// Handle to the `logs` collection; cheap to clone.
#[derive(Clone)]
pub struct LogStore {
    client: Client,
    logs: Collection<LogDocument>,
    /// The indexes, created once; a failed attempt (MongoDB down) is retried by the next write.
    indexes: std::sync::Arc<OnceCell<()>>,
    op_timeout: Duration,
    /// `LOG_RETENTION`: what the TTL index is made to say; `None` drops it.
    retention: Option<Duration>,
}

impl LogStore {
    /// Parses the settings into a client. Connects lazily: nothing is contacted here.
    pub async fn new(settings: &MongoSettings) -> anyhow::Result<Self> {
        use anyhow::Context;
        use service_kit::ExposeSecret;
        let mut options =
            ClientOptions::parse(settings.url.expose_secret()).await.context("MONGO_URL is not a valid MongoDB URL")?;
        options.server_selection_timeout = Some(settings.connect_timeout);
        options.connect_timeout = Some(settings.connect_timeout);
        options.app_name.get_or_insert_with(|| "logger".to_owned());
        let client = Client::with_options(options).context("cannot create the MongoDB client")?;
        let logs = client.database(&settings.database).collection(COLLECTION);
        Ok(Self {
            client,
            logs,
            indexes: Default::default(),
            op_timeout: settings.op_timeout,
            retention: settings.retention,
        })
    }

    /// The database name, for logs.
    pub fn database(&self) -> String {
        self.logs.namespace().db
    }

    /// Creates the indexes unless done already: newest-first listing, one entry per event id,
    /// one trace's entries, and retention.
    pub async fn ensure_indexes(&self) -> Result<(), LogError> {
        self.indexes
            .get_or_try_init(|| async {
                // `created_at` first: the listing sorts on (created_at, _id), both descending.
                let by_time = IndexModel::builder()
                    .keys(doc! { "created_at": -1, "_id": -1 })
                    .options(IndexOptions::builder().name("created_at".to_owned()).build())
                    .build();
                let by_event = IndexModel::builder()
                    .keys(doc! { "event_id": 1 })
                    .options(IndexOptions::builder().name("event_id".to_owned()).unique(true).sparse(true).build())
                    .build();
                // One trace's entries, newest first; sparse: entries without a trace are not in it.
                let by_trace = IndexModel::builder()
                    .keys(doc! { "trace_id": 1, "created_at": -1, "_id": -1 })
                    .options(IndexOptions::builder().name("trace_id".to_owned()).sparse(true).build())
                    .build();
                let indexes = [by_time, by_event, by_trace];
                self.bounded("create indexes", self.logs.create_indexes(indexes)).await?;
                self.apply_retention().await?;
                tracing::info!(database = %self.database(), retention = ?self.retention, "indexes ready");
                Ok(())
            })
            .await
            .copied()
    }

    /// Makes [`RETENTION_INDEX`] say `self.retention`: creates, retunes (`collMod`) or drops it.
    async fn apply_retention(&self) -> Result<(), LogError> {
        let indexes = async { self.logs.list_indexes().await?.try_collect::<Vec<IndexModel>>().await };
        let current = self
            .bounded("list indexes", indexes)
            .await?
            .into_iter()
            .find(|index| index.options.as_ref().and_then(|o| o.name.as_deref()) == Some(RETENTION_INDEX))
            .map(|index| index.options.and_then(|o| o.expire_after));
        match (current, self.retention) {
            (None, None) => Ok(()),
            (Some(_), None) => {
                self.bounded("drop the retention index", self.logs.drop_index(RETENTION_INDEX)).await?;
                tracing::info!(database = %self.database(), "retention off: TTL index dropped");
                Ok(())
            }
            (Some(current), Some(wanted)) if current == Some(wanted) => Ok(()),
            (Some(_), Some(wanted)) => self.retune_retention(wanted).await,
            (None, Some(wanted)) => {
                let ttl = IndexModel::builder()
                    .keys(doc! { "created_at": 1 })
                    .options(IndexOptions::builder().name(RETENTION_INDEX.to_owned()).expire_after(wanted).build())
                    .build();
                let what = "create the retention index";
                match self.bounded_until(what, Instant::now() + self.op_timeout, self.logs.create_index(ttl)).await? {
                    Ok(_) => Ok(()),
                    // Another logger made it just now with a retention of its own: ours is the newer setting.
                    Err(error) if command_code(&error) == Some(INDEX_OPTIONS_CONFLICT) => {
                        self.retune_retention(wanted).await
                    }
                    Err(error) => Err(unavailable(what, &error)),
                }
            }
        }
    }

    /// Sets the TTL of the existing [`RETENTION_INDEX`] in place.
    async fn retune_retention(&self, wanted: Duration) -> Result<(), LogError> {
        let seconds = i64::try_from(wanted.as_secs()).unwrap_or(i64::MAX);
        let command =
            doc! { "collMod": COLLECTION, "index": { "name": RETENTION_INDEX, "expireAfterSeconds": seconds } };
        let database = self.client.database(&self.database());
        self.bounded("change the retention", database.run_command(command)).await?;
        tracing::info!(database = %self.database(), retention = ?wanted, "retention changed");
        Ok(())
    }

    /// Inserts `docs` in one unordered `insert_many` and says, per document, which id it has:
    /// its own, or for a duplicate event id the id of the entry already stored, or an error.
    /// The result has one element per document, in order. After a broken connection the same
    /// documents are sent again (see the module doc), until `deadline` at the latest.
    pub async fn insert_all(&self, docs: &[LogDocument], deadline: Instant) -> Vec<Result<String, LogError>> {
        let results = self.insert_each(docs, deadline).await;
        let written = results.iter().filter(|result| result.is_ok()).count();
        service_kit::metrics::counter!(metrics::ENTRIES_WRITTEN).increment(written as u64);
        results
    }

    async fn insert_each(&self, docs: &[LogDocument], deadline: Instant) -> Vec<Result<String, LogError>> {
        if docs.is_empty() {
            return Vec::new();
        }
        if let Err(error) = self.ensure_indexes().await {
            return vec![Err(error); docs.len()];
        }
        let mut delays = WRITE_RETRY.delays();
        loop {
            let error = match self.bounded_until("insert", deadline, self.logs.insert_many(docs).ordered(false)).await {
                Ok(Ok(_)) => return docs.iter().map(|d| Ok(d.id.to_hex())).collect(),
                Ok(Err(error)) => error,
                Err(timeout) => return vec![Err(timeout); docs.len()],
            };
            if !is_transient(&error) {
                return self.per_document(docs, error).await;
            }
            match delays.next() {
                Some(delay) if Instant::now() + delay < deadline => {
                    tracing::warn!(%error, entries = docs.len(), retry_in_ms = delay.as_millis() as u64, "insert failed on the connection; sending it again");
                    tokio::time::sleep(delay).await;
                }
                _ => return vec![Err(unavailable("insert", &error)); docs.len()],
            }
        }
    }

    /// The answers to an `insert_many` that the server refused in part or in whole.
    async fn per_document(&self, docs: &[LogDocument], error: mongodb::error::Error) -> Vec<Result<String, LogError>> {
        let write_errors = match *error.kind {
            ErrorKind::InsertMany(InsertManyError {
                write_errors: Some(write_errors),
                write_concern_error: None,
                ..
            }) => write_errors,
            _ => {
                let error = unavailable("insert", &error);
                return vec![Err(error); docs.len()];
            }
        };
        // Unordered: every document without an error of its own was stored.
        let mut results: Vec<Result<String, LogError>> = docs.iter().map(|d| Ok(d.id.to_hex())).collect();
        let mut duplicates: Vec<(usize, String)> = Vec::new();
        for write_error in write_errors {
            let Some(doc) = docs.get(write_error.index) else { continue };
            match (&doc.event_id, write_error.code) {
                (Some(event_id), DUPLICATE_KEY) => duplicates.push((write_error.index, event_id.clone())),
                // Without an event id only `_id` is unique, and a fresh `_id` is only ever taken
                // by this very document, sent before: it is stored, under its own id.
                (None, DUPLICATE_KEY) => {}
                _ => {
                    tracing::error!(code = write_error.code, message = %write_error.message, "MongoDB refused an entry");
                    results[write_error.index] =
                        Err(LogError::Unavailable(format!("MongoDB refused the entry: {}", write_error.message)));
                }
            }
        }
        if !duplicates.is_empty() {
            let existing = self.ids_of_events(duplicates.iter().map(|(_, id)| id.clone()).collect()).await;
            for (index, event_id) in duplicates {
                results[index] = match &existing {
                    Ok(found) => found.get(&event_id).cloned().ok_or_else(|| {
                        LogError::Unavailable(format!("event {event_id} is a duplicate, but its entry was not found"))
                    }),
                    Err(error) => Err(error.clone()),
                };
            }
        }
        results
    }

    /// The ids of the entries stored for these event ids.
    async fn ids_of_events(&self, event_ids: Vec<String>) -> Result<HashMap<String, String>, LogError> {
        let raw = self.logs.clone_with_type::<Document>();
        let find = async {
            raw.find(doc! { "event_id": { "$in": event_ids } })
                .projection(doc! { "_id": 1, "event_id": 1 })
                .await?
                .try_collect::<Vec<Document>>()
                .await
        };
        let found = self.bounded("find duplicates", find).await?;
        Ok(found
            .into_iter()
            .filter_map(|d| Some((d.get_str("event_id").ok()?.to_owned(), d.get_object_id("_id").ok()?.to_hex())))
            .collect())
    }

    /// At most `limit` entries, newest first, older than the entry `before` when given; no entry
    /// `before` is [`LogError::NotFound`] (a page after nothing is not an empty page). Ordered by (`created_at`, `_id`) descending: ids break ties between entries of the same
    /// millisecond, and paging from an entry continues exactly after it. With `trace_id`, only
    /// the entries of that trace.
    pub async fn recent(
        &self,
        limit: u32,
        before: Option<&str>,
        trace_id: Option<&TraceId>,
    ) -> Result<Vec<StoredEntry>, LogError> {
        let mut filter = match before {
            None => doc! {},
            Some(before) => {
                let id = parse_id("before", before)?;
                let raw = self.logs.clone_with_type::<Document>();
                let anchor = self
                    .bounded(
                        "find the page anchor",
                        raw.find_one(doc! { "_id": id }).projection(doc! { "created_at": 1 }),
                    )
                    .await?
                    .ok_or_else(|| LogError::NotFound(format!("{before} (the `before` of the page)")))?;
                let created_at = anchor
                    .get_datetime("created_at")
                    .map_err(|_| LogError::Invalid(format!("before: entry {before:?} has no created_at")))?;
                doc! { "$or": [
                    { "created_at": { "$lt": created_at } },
                    { "created_at": created_at, "_id": { "$lt": id } },
                ] }
            }
        };
        if let Some(trace_id) = trace_id {
            filter.insert("trace_id", trace_id.as_str());
        }
        let find = async {
            self.logs
                .find(filter)
                .sort(doc! { "created_at": -1, "_id": -1 })
                .limit(i64::from(limit))
                .await?
                .try_collect::<Vec<LogDocument>>()
                .await
        };
        let docs = self.bounded("list entries", find).await?;
        Ok(docs.into_iter().map(LogDocument::into_stored).collect())
    }

    /// One entry by id.
    pub async fn get(&self, id: &str) -> Result<StoredEntry, LogError> {
        let oid = parse_id("id", id)?;
        self.bounded("find an entry", self.logs.find_one(doc! { "_id": oid }))
            .await?
            .map(LogDocument::into_stored)
            .ok_or_else(|| LogError::NotFound(id.to_owned()))
    }

    /// Succeeds when MongoDB answers within [`PING_TIMEOUT`].
    pub async fn ping(&self) -> Result<(), LogError> {
        let database = self.client.database(&self.database());
        tokio::time::timeout(PING_TIMEOUT, database.run_command(doc! { "ping": 1 }))
            .await
            .map_err(|_| {
                tracing::error!(timeout = ?PING_TIMEOUT, "MongoDB did not answer a ping");
                LogError::Unavailable(format!("MongoDB did not answer within {PING_TIMEOUT:?}"))
            })?
            .map_err(|error| unavailable("ping", &error))?;
        Ok(())
    }

    /// Runs one driver operation within `op_timeout`; any failure means the store is unavailable.
    async fn bounded<T>(
        &self,
        what: &'static str,
        operation: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T, LogError> {
        let deadline = Instant::now() + self.op_timeout;
        self.bounded_until(what, deadline, operation).await?.map_err(|error| unavailable(what, &error))
    }

    /// Runs one driver operation within `op_timeout` or until `deadline`, whichever comes first;
    /// the driver's own outcome is left to the caller.
    /// Every operation is measured here, by `what` ([`metrics::STORE_DURATION`]).
    async fn bounded_until<T>(
        &self,
        what: &'static str,
        deadline: Instant,
        operation: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<mongodb::error::Result<T>, LogError> {
        let started = Instant::now();
        let by_caller = deadline < started + self.op_timeout;
        let deadline = deadline.min(started + self.op_timeout);
        let answer = tokio::time::timeout_at(deadline, operation.into_future()).await;
        let outcome = match &answer {
            Ok(Ok(_)) => "ok",
            Ok(Err(error)) if only_duplicates(error) => "duplicate",
            Ok(Err(_)) => "error",
            Err(_) => "timeout",
        };
        metrics::record_store(what, outcome, started.elapsed());
        answer.map_err(|_| {
            tracing::error!(what, timeout = ?self.op_timeout, by_caller, "MongoDB did not answer");
            LogError::Unavailable(if by_caller {
                "MongoDB did not answer before the caller's deadline".to_owned()
            } else {
                format!("MongoDB did not answer within {:?}", self.op_timeout)
            })
        })
    }
}

/// The server's error code, when the server refused a command.
fn command_code(error: &mongodb::error::Error) -> Option<i32> {
    match *error.kind {
        ErrorKind::Command(ref command) => Some(command.code),
        _ => None,
    }
}

/// An `insert_many` refused only for duplicate keys: a redelivered event or a resent insert,
/// which counts as stored (see [`LogStore::insert_all`]), not as a store error.
fn only_duplicates(error: &mongodb::error::Error) -> bool {
    match &*error.kind {
        ErrorKind::InsertMany(InsertManyError {
            write_errors: Some(write_errors), write_concern_error: None, ..
        }) => write_errors.iter().all(|write_error| write_error.code == DUPLICATE_KEY),
        _ => false,
    }
}

/// A failure of the connection rather than an answer of the server: the write may or may not
/// have been stored, and sending it again is safe.
fn is_transient(error: &mongodb::error::Error) -> bool {
    matches!(*error.kind, ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. })
        || error.contains_label(RETRYABLE_WRITE_ERROR)
}

/// A driver error as a caller sees it: "unavailable", and whether it could not even find a server.
fn unavailable(what: &str, error: &mongodb::error::Error) -> LogError {
    tracing::error!(what, error = %error, "MongoDB operation failed");
    let reason = match *error.kind {
        ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => {
            "MongoDB is unreachable".to_owned()
        }
        _ => format!("MongoDB failed to {what}"),
    };
    LogError::Unavailable(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_24_hex_digits() {
        assert!(parse_id("id", "65f1c0ffee0000000000abcd").is_ok());
        for bad in ["", "nope", "65f1c0ffee0000000000abc", "65f1c0ffee0000000000abcdz", "zzzzzzzzzzzzzzzzzzzzzzzz"] {
            let error = parse_id("id", bad).unwrap_err();
            assert!(
                matches!(&error, LogError::Invalid(m) if m == "invalid field `id`: must be an entry id of 24 hex digits"),
                "{bad:?}: {error:?}"
            );
        }
    }

    #[test]
    fn a_document_without_an_event_id_has_no_event_id_field() {
        let entry = LogEntry {
            name: "n".into(),
            data: "d".into(),
            level: Level::Warning,
            event_id: None,
            sub: None,
            trace_id: None,
        };
        let doc = bson::to_document(&LogDocument::new(entry)).unwrap();
        assert!(!doc.contains_key("event_id"), "{doc}");
        assert!(!doc.contains_key("sub"), "{doc}");
        assert!(!doc.contains_key("trace_id"), "out of the sparse trace index: {doc}");
        assert_eq!(doc.get_str("level").unwrap(), "WARNING");
        assert_eq!(doc.get_datetime("created_at").unwrap(), doc.get_datetime("updated_at").unwrap());
    }

    #[test]
    fn a_go_original_document_reads_with_defaults() {
        let stored = doc! { "_id": ObjectId::new(), "name": "event", "data": "x",
        "created_at": bson::DateTime::now(), "updated_at": bson::DateTime::now() };
        let entry = bson::from_document::<LogDocument>(stored).unwrap().into_stored();
        assert_eq!(entry.level, Level::Info);
        assert_eq!(entry.event_id, None);
    }

    #[test]
    fn event_ids_round_trip_as_hyphenated_uuids() {
        let id = uuid::Uuid::new_v4();
        let entry = LogEntry {
            name: "n".into(),
            data: String::new(),
            level: Level::Info,
            event_id: Some(id),
            sub: None,
            trace_id: None,
        };
        let doc = LogDocument::new(entry);
        assert_eq!(doc.event_id.as_deref(), Some(id.hyphenated().to_string().as_str()));
        assert_eq!(doc.into_stored().event_id, Some(id));
    }
}
