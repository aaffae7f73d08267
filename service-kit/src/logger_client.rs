//! The one logger RPC client of the workspace: cheap to clone, connects on first use, shares
//! one TCP connection among its clones and reconnects by itself after the logger restarted.
//!
//! The Go original dialled a new RPC connection per request and never closed it. Here a
//! connection is made once and multiplexed (tarpc tags every request), and each call is
//! bounded by the client's timeout, connecting included, both locally and as the tarpc
//! deadline the server enforces.
//!
//! Reconnection: the connection's dispatch task ends when the transport breaks (the server
//! went away). A call that finds the cached connection dead replaces it before sending, so
//! the first call after a logger restart already succeeds. A call that was in flight when the
//! connection broke fails with [`RpcError::Unreachable`] and is not retried here: a write may
//! or may not have been stored, and only the caller knows whether repeating it is safe
//! (entries with an `event_id` are idempotent on the server).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use contract::log::{LogEntry, LogError, StoredEntry};
use contract::rpc::LoggerClient;
use tarpc::client::{self, RpcError as TarpcError};
use tarpc::context;
use tarpc::serde_transport::tcp;
use tarpc::tokio_serde::formats::Json;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// The largest RPC frame either side accepts: a full `write_many` of maximal plain-text entries
/// (tokio-util's default of 8 MiB is too small for it). The server uses the same limit. JSON
/// escaping, or multi-byte characters (the limits count characters), can make a batch several
/// times larger than its text; such a call fails as [`RpcError::Unreachable`], and smaller
/// batches go through.
pub const MAX_FRAME_BYTES: usize = contract::log::MAX_BATCH
    * (contract::validate::MAX_LOG_DATA_CHARS + contract::validate::MAX_LOG_NAME_CHARS + 128)
    + 64 * 1024;

/// Why a logger call failed, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The logger could not be reached, or the connection broke during the call.
    #[error("logger unreachable: {0}")]
    Unreachable(String),
    /// No answer within the client's timeout (connecting included).
    #[error("logger did not answer within {0:?}")]
    Timeout(Duration),
    /// The logger answered with an error of its own.
    #[error("{0}")]
    Logger(LogError),
}

/// A cheap-to-clone handle to the logger's RPC server; see the module docs.
#[derive(Clone)]
pub struct LoggerRpc {
    inner: Arc<Inner>,
}

struct Inner {
    /// `host:port` of the logger's tarpc server.
    addr: String,
    /// Bound on every call, connecting included; also the deadline sent to the server.
    timeout: Duration,
    /// The shared connection, if one is up. A mutex (not a lock-free swap) so that concurrent
    /// first calls make one connection between them rather than one each.
    connection: Mutex<Option<Connection>>,
    /// Numbers connections, so that a failed call only discards the connection it used.
    generation: AtomicU64,
}

/// One live connection: the stub every clone sends through, and the task driving it.
struct Connection {
    generation: u64,
    client: LoggerClient,
    /// Finishes when the transport breaks; a finished dispatch means a dead connection.
    dispatch: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The dispatch would also end once every stub is dropped; aborting closes the socket now.
        self.dispatch.abort();
    }
}

impl std::fmt::Debug for LoggerRpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggerRpc").field("addr", &self.inner.addr).field("timeout", &self.inner.timeout).finish()
    }
}

impl LoggerRpc {
    /// A client for the logger at `addr` (`host:port`). Nothing connects until the first call.
    pub fn new(addr: impl Into<String>, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                addr: addr.into(),
                timeout,
                connection: Mutex::new(None),
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// Stores one entry; returns its id (the existing id when its `event_id` is already stored).
    #[tracing::instrument(name = "logger.write_log", skip(self, entry), fields(addr = %self.inner.addr, name = %entry.name))]
    pub async fn write_log(&self, entry: LogEntry) -> Result<String, RpcError> {
        self.call(|client, ctx| async move { client.write_log(ctx, entry).await }).await
    }

    /// Stores many entries (at most `contract::log::MAX_BATCH`); returns their ids in order.
    #[tracing::instrument(name = "logger.write_many", skip(self, entries), fields(addr = %self.inner.addr, count = entries.len()))]
    pub async fn write_many(&self, entries: Vec<LogEntry>) -> Result<Vec<String>, RpcError> {
        self.call(|client, ctx| async move { client.write_many(ctx, entries).await }).await
    }

    /// The newest entries first, at most `limit`, older than the entry `before` when given.
    #[tracing::instrument(name = "logger.recent", skip(self), fields(addr = %self.inner.addr))]
    pub async fn recent(&self, limit: u32, before: Option<String>) -> Result<Vec<StoredEntry>, RpcError> {
        self.call(|client, ctx| async move { client.recent(ctx, limit, before).await }).await
    }

    /// One entry by id.
    #[tracing::instrument(name = "logger.get", skip(self), fields(addr = %self.inner.addr))]
    pub async fn get(&self, id: String) -> Result<StoredEntry, RpcError> {
        self.call(|client, ctx| async move { client.get(ctx, id).await }).await
    }

    /// Succeeds when the logger answers and can reach its store: a readiness check.
    #[tracing::instrument(name = "logger.ping", skip(self), fields(addr = %self.inner.addr))]
    pub async fn ping(&self) -> Result<(), RpcError> {
        self.call(|client, ctx| async move { client.ping(ctx).await }).await
    }

    /// Runs one RPC on the shared connection, within the timeout, connecting first if needed.
    async fn call<T, F, Fut>(&self, rpc: F) -> Result<T, RpcError>
    where
        F: FnOnce(LoggerClient, context::Context) -> Fut,
        Fut: Future<Output = Result<Result<T, LogError>, TarpcError>>,
    {
        let timeout = self.inner.timeout;
        let deadline = Instant::now() + timeout;
        let attempt = async {
            let (generation, client) = self.connection().await?;
            let mut ctx = context::current();
            ctx.deadline = deadline;
            match rpc(client, ctx).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(error)) => Err(RpcError::Logger(error)),
                Err(TarpcError::DeadlineExceeded) => Err(RpcError::Timeout(timeout)),
                Err(error @ TarpcError::Server(_)) => Err(RpcError::Unreachable(crate::http::error_chain(&error))),
                Err(error) => {
                    // Shutdown, Send or Channel: the transport is broken; the next call reconnects.
                    self.discard(generation).await;
                    Err(RpcError::Unreachable(crate::http::error_chain(&error)))
                }
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(RpcError::Timeout(timeout)),
        }
    }

    /// The shared stub, after connecting when there is no live connection.
    async fn connection(&self) -> Result<(u64, LoggerClient), RpcError> {
        let mut slot = self.inner.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            if !connection.dispatch.is_finished() {
                return Ok((connection.generation, connection.client.clone()));
            }
            tracing::info!(addr = %self.inner.addr, "logger connection was lost, reconnecting");
        }
        *slot = None;
        let mut connect = tcp::connect(self.inner.addr.as_str(), Json::default);
        connect.config_mut().max_frame_length(MAX_FRAME_BYTES);
        let transport =
            connect.await.map_err(|e| RpcError::Unreachable(format!("cannot connect to {}: {e}", self.inner.addr)))?;
        let new_client = LoggerClient::new(client::Config::default(), transport);
        let addr = self.inner.addr.clone();
        let dispatch = tokio::spawn(async move {
            if let Err(error) = new_client.dispatch.await {
                tracing::warn!(%addr, error = %crate::http::error_chain(&error), "logger connection broke");
            }
        });
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let client = new_client.client;
        tracing::debug!(addr = %self.inner.addr, generation, "connected to the logger");
        *slot = Some(Connection { generation, client: client.clone(), dispatch });
        Ok((generation, client))
    }

    /// Drops the connection `generation` if it is still the shared one.
    async fn discard(&self, generation: u64) {
        let mut slot = self.inner.connection.lock().await;
        if slot.as_ref().is_some_and(|c| c.generation == generation) {
            *slot = None;
        }
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;

    fn entry() -> LogEntry {
        LogEntry { name: "n".into(), data: "d".into(), level: contract::log::Level::Info, event_id: None, sub: None }
    }

    #[tokio::test]
    async fn a_closed_port_fails_fast_as_unreachable() {
        let port = crate::testing::closed_port();
        let rpc = LoggerRpc::new(format!("127.0.0.1:{port}"), Duration::from_secs(5));
        let started = Instant::now();
        let error = rpc.write_log(entry()).await.unwrap_err();
        assert!(matches!(error, RpcError::Unreachable(_)), "{error:?}");
        assert!(error.to_string().contains("cannot connect"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out_within_the_bound() {
        // Accepts connections and reads nothing: the call must not hang.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                sockets.push(socket);
            }
        });
        let timeout = Duration::from_millis(300);
        let rpc = LoggerRpc::new(addr.to_string(), timeout);
        let started = Instant::now();
        let error = rpc.ping().await.unwrap_err();
        assert!(matches!(error, RpcError::Timeout(t) if t == timeout), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
        accepted.abort();
    }
}
