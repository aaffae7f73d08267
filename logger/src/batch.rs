//! The writer: groups concurrent writes into one `insert_many`.
//!
//! A single insert costs about as much as an `insert_many` of dozens of documents, so under load
//! the writer stores many writes with one unordered `insert_many`. Each caller still gets its
//! own answer: its entry's id, the id of the entry already stored for its event id, or its own
//! error. One bad entry does not fail the others.
//!
//! Grouping is a group commit: at most `concurrency` groups are written at once; while they
//! are, new writes queue, and the next group takes everything queued (up to `max_entries`).
//! An idle logger writes a lone entry at once; a busy one writes big groups. `window` adds an
//! optional linger: after its first write a group waits that long for more. The default is
//! none: with callers that wait for their answer (RPC, HTTP) a linger only adds its length to
//! every round (measured with `examples/bench_rpc.rs`: 2 ms cost a quarter of the throughput).
//!
//! Bounds: a write lingers at most `window`; the queue holds a bounded number of writes, so a
//! slow store pushes back on callers instead of growing memory. With `max_entries == 1` there
//! is no grouping at all: every write is its own insert, made by the caller's task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use contract::log::LogError;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::settings::BatchSettings;
use crate::store::{LogDocument, LogStore};

/// Writes queued before callers wait for room, per allowed entry in a group.
const QUEUE_PER_GROUP_ENTRY: usize = 4;

/// One caller's documents and where its answer goes.
struct Job {
    docs: Vec<LogDocument>,
    /// When its caller stops waiting: a group resends after a broken connection until the
    /// latest deadline of its jobs.
    deadline: Instant,
    reply: oneshot::Sender<Result<Vec<String>, LogError>>,
}

/// Stores documents, grouped or not; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    mode: Mode,
    stats: Arc<WriteStats>,
}

/// Counters of what the writer did: how well writes are grouped.
#[derive(Debug, Default)]
pub struct WriteStats {
    inserts: AtomicU64,
    entries: AtomicU64,
}

impl WriteStats {
    /// `insert_many` calls made.
    pub fn inserts(&self) -> u64 {
        self.inserts.load(Ordering::Relaxed)
    }

    /// Entries those calls carried.
    pub fn entries(&self) -> u64 {
        self.entries.load(Ordering::Relaxed)
    }

    fn record(&self, entries: usize) {
        service_kit::metrics::histogram!(crate::metrics::BATCH_SIZE).record(entries as f64);
        self.inserts.fetch_add(1, Ordering::Relaxed);
        self.entries.fetch_add(entries as u64, Ordering::Relaxed);
    }
}

#[derive(Clone)]
enum Mode {
    /// Each write is its own insert (`max_entries == 1`).
    Direct(LogStore),
    /// Writes go to the grouping task.
    Grouped(mpsc::Sender<Job>),
}

impl Writer {
    /// A writer for `store`, counting into `stats` (writers may share them); starts the grouping
    /// task unless grouping is off. The task ends once every clone of the writer is dropped,
    /// after storing what was queued.
    pub fn start(store: LogStore, settings: &BatchSettings, stats: Arc<WriteStats>) -> Self {
        if settings.max_entries <= 1 {
            return Self { mode: Mode::Direct(store), stats };
        }
        let (sender, receiver) = mpsc::channel(settings.max_entries.saturating_mul(QUEUE_PER_GROUP_ENTRY));
        tokio::spawn(group_writes(store, receiver, settings.clone(), stats.clone()));
        Self { mode: Mode::Grouped(sender), stats }
    }

    pub fn stats(&self) -> Arc<WriteStats> {
        self.stats.clone()
    }

    /// Stores `docs` and returns their ids in order; fails as a whole when any of them failed.
    /// A write that cannot even be queued before `deadline` fails as unavailable.
    pub async fn write(&self, docs: Vec<LogDocument>, deadline: Instant) -> Result<Vec<String>, LogError> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        match &self.mode {
            Mode::Direct(_) if deadline <= Instant::now() => Err(deadline_passed()),
            Mode::Direct(store) => {
                self.stats.record(docs.len());
                store.insert_all(&docs, deadline).await.into_iter().collect()
            }
            Mode::Grouped(queue) => {
                let (reply, answer) = oneshot::channel();
                tokio::time::timeout_at(deadline, queue.send(Job { docs, deadline, reply }))
                    .await
                    .map_err(|_| {
                        LogError::Unavailable("the store is busy: no room for the write before its deadline".into())
                    })?
                    .map_err(|_| stopped())?;
                answer.await.map_err(|_| stopped())?
            }
        }
    }
}

fn stopped() -> LogError {
    LogError::Unavailable("the logger is shutting down".into())
}

/// The grouping task: collect a group, hand it to a flush task, repeat.
async fn group_writes(
    store: LogStore,
    mut queue: mpsc::Receiver<Job>,
    settings: BatchSettings,
    stats: Arc<WriteStats>,
) {
    let in_flight = Arc::new(Semaphore::new(settings.concurrency));
    // A job that did not fit into the previous group starts the next one.
    let mut carried: Option<Job> = None;
    loop {
        // A free slot first, then the group: while every slot is busy, writes pile up in the
        // queue and the next group takes them all (group commit), without any timer.
        let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
        let first = match carried.take() {
            Some(job) => job,
            None => match queue.recv().await {
                Some(job) => job,
                None => break,
            },
        };
        let deadline = Instant::now() + settings.window;
        let mut size = first.docs.len();
        let mut group = vec![first];
        while size < settings.max_entries {
            let next = match queue.try_recv() {
                Ok(job) => Some(job),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) if settings.window.is_zero() => None,
                Err(mpsc::error::TryRecvError::Empty) => {
                    tokio::time::timeout_at(deadline, queue.recv()).await.ok().flatten()
                }
            };
            let Some(job) = next else { break };
            if size + job.docs.len() > settings.max_entries {
                carried = Some(job);
                break;
            }
            size += job.docs.len();
            group.push(job);
        }
        let group = answer_expired(group);
        if group.is_empty() {
            continue;
        }
        let entries = group.iter().map(|job| job.docs.len()).sum();
        stats.record(entries);
        let store = store.clone();
        tokio::spawn(async move {
            flush(&store, group, entries).await;
            drop(permit);
        });
    }
    // Wait for the groups still being written before the task (and the store handle) ends.
    let _ = in_flight.acquire_many(settings.concurrency as u32).await;
}

/// Answers, without writing them, the jobs whose caller has stopped waiting (deadline passed,
/// or its RPC call aborted by tarpc at that deadline): a queued write that waited out its
/// caller's deadline is not started, so a backlog does not go on loading the store for callers
/// that will retry anyway (the listener holds such an event and resends it). Returns the rest.
fn answer_expired(group: Vec<Job>) -> Vec<Job> {
    let now = Instant::now();
    let (live, expired): (Vec<Job>, Vec<Job>) =
        group.into_iter().partition(|job| job.deadline > now && !job.reply.is_closed());
    for job in expired {
        let _ = job.reply.send(Err(deadline_passed()));
    }
    live
}

/// The answer to work whose caller's deadline passed before it started.
pub fn deadline_passed() -> LogError {
    LogError::Unavailable("the caller's deadline passed before the store was asked".into())
}

/// Writes one group (`entries` documents) and answers each job with its own results.
// `entries` is a field from the start: recorded later, the JSON log layer would serialise the
// span's fields a second time (some 4k instructions per group, callgrind).
#[tracing::instrument(name = "flush", skip_all, fields(jobs = group.len(), entries = entries))]
async fn flush(store: &LogStore, group: Vec<Job>, entries: usize) {
    let deadline = group.iter().map(|job| job.deadline).max().unwrap_or_else(Instant::now);
    let (docs, replies): (Vec<Vec<LogDocument>>, Vec<_>) = group.into_iter().map(|job| (job.docs, job.reply)).unzip();
    let sizes: Vec<usize> = docs.iter().map(Vec::len).collect();
    let docs: Vec<LogDocument> = docs.into_iter().flatten().collect();
    let mut results = store.insert_all(&docs, deadline).await.into_iter();
    for (size, reply) in sizes.into_iter().zip(replies) {
        // Take all of this job's results before looking at them, so the next job gets its own.
        let mine: Vec<Result<String, LogError>> = results.by_ref().take(size).collect();
        let answer: Result<Vec<String>, LogError> = mine.into_iter().collect();
        // A caller that gave up (its deadline passed) no longer listens; its entry is stored anyway.
        let _ = reply.send(answer);
    }
}
