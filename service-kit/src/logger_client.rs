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
//!
//! The codec, [`MessagePack`], is MessagePack with structs written as maps; see its docs for why
//! (and why not tokio-serde's own MessagePack format, nor bincode 1).

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use contract::log::{LogEntry, LogError, StoredEntry};
use contract::rpc::LoggerClient;
use tarpc::client::{self, RpcError as TarpcError};
use tarpc::context;
use tarpc::serde_transport::tcp;
use tarpc::tokio_serde::{Deserializer, Serializer};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// The largest RPC frame either side accepts: a full `write_many` of maximal plain-text entries
/// (tokio-util's default of 8 MiB is too small for it). The server uses the same limit.
/// MessagePack frames a string by its byte length (no escaping), but multi-byte characters (the
/// limits count characters) can make a batch up to four times larger than its character count;
/// such a call fails as [`RpcError::Unreachable`], and smaller batches go through.
pub const MAX_FRAME_BYTES: usize = contract::log::MAX_BATCH
    * (contract::validate::MAX_LOG_DATA_CHARS + contract::validate::MAX_LOG_NAME_CHARS + 128)
    + 64 * 1024;

/// The RPC codec of both sides (`tcp::connect(addr, MessagePack::default)`, and the logger's
/// `tcp::listen_on`): MessagePack (`rmp-serde`), with structs written as maps of field names.
///
/// - Not JSON: encoding and parsing JSON was most of the CPU both processes spent per `log`
///   call (see `logger/src/rpc.rs` for the figures).
/// - Not bincode 1: unmaintained (RUSTSEC-2025-0141).
/// - Maps, not arrays. tokio-serde's own `MessagePack` format writes structs as arrays
///   (`rmp_serde::to_vec`), which reads fields by position: `StoredEntry::sub` is skipped when
///   absent (`skip_serializing_if`, for the JSON API) and is followed by `created_at`, so an
///   entry without a subject would be misread (the test below shows it). Maps also let a field
///   be added with `#[serde(default)]` while old and new processes run side by side, as JSON
///   did. They cost the field names: some 60 bytes per call, far less than JSON's.
/// - Compact for the rest: unit variants as their names, UUIDs as 16 bytes, `Option::None`
///   as nil. rmp-serde is not human-readable, so types that have two forms take the binary one.
pub struct MessagePack<Item, SinkItem>(PhantomData<fn(SinkItem) -> Item>);

impl<Item, SinkItem> Default for MessagePack<Item, SinkItem> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<Item: serde::de::DeserializeOwned, SinkItem> Deserializer<Item> for MessagePack<Item, SinkItem> {
    type Error = std::io::Error;

    fn deserialize(self: Pin<&mut Self>, src: &bytes::BytesMut) -> Result<Item, Self::Error> {
        rmp_serde::from_slice(src).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

impl<Item, SinkItem: serde::Serialize> Serializer<SinkItem> for MessagePack<Item, SinkItem> {
    type Error = std::io::Error;

    fn serialize(self: Pin<&mut Self>, item: &SinkItem) -> Result<bytes::Bytes, Self::Error> {
        rmp_serde::to_vec_named(item)
            .map(bytes::Bytes::from)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

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
///
/// Its calls open no span of their own: tarpc's client opens one per call (`RPC`, `otel.kind`
/// client, `otel.name` the method), the parent of the logger's server span. A second span
/// around it cost the broker some 12k instructions per `log` action (callgrind).
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
    /// tarpc's context without a trace, made once; each call sets its deadline. tarpc's client
    /// takes the trace from its own span and only falls back to a child of this one without
    /// OpenTelemetry, as it did of `context::current()`'s, which is then this same empty
    /// trace. `context::current()` per call looked the current span up for nothing.
    context: context::Context,
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
                context: tracing::dispatcher::with_default(&tracing::Dispatch::none(), context::current),
            }),
        }
    }

    /// Stores one entry; returns its id (the existing id when its `event_id` is already stored).
    pub async fn write_log(&self, entry: LogEntry) -> Result<String, RpcError> {
        self.call(|client, ctx| async move { client.write_log(ctx, entry).await }).await
    }

    /// Stores many entries (at most `contract::log::MAX_BATCH`); returns their ids in order.
    pub async fn write_many(&self, entries: Vec<LogEntry>) -> Result<Vec<String>, RpcError> {
        self.call(|client, ctx| async move { client.write_many(ctx, entries).await }).await
    }

    /// The newest entries first, at most `limit`, older than the entry `before` when given, only
    /// those of the trace `trace_id` when given.
    pub async fn recent(
        &self,
        limit: u32,
        before: Option<String>,
        trace_id: Option<String>,
    ) -> Result<Vec<StoredEntry>, RpcError> {
        self.call(|client, ctx| async move { client.recent(ctx, limit, before, trace_id).await }).await
    }

    /// One entry by id.
    pub async fn get(&self, id: String) -> Result<StoredEntry, RpcError> {
        self.call(|client, ctx| async move { client.get(ctx, id).await }).await
    }

    /// Succeeds when the logger answers and can reach its store: a readiness check.
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
            let mut ctx = self.inner.context;
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
        let mut connect = tcp::connect(self.inner.addr.as_str(), MessagePack::default);
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
        LogEntry {
            name: "n".into(),
            data: "d".into(),
            level: contract::log::Level::Info,
            event_id: None,
            sub: None,
            trace_id: None,
        }
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

#[cfg(test)]
mod codec_tests {
    //! Every message of the logger RPC, tarpc's envelope included, through the codec both
    //! sides use: what is written is what is read.

    use std::fmt::Debug;

    use contract::log::Level;
    use contract::rpc::{LoggerRequest, LoggerResponse};
    use tarpc::{ClientMessage, Request, Response, ServerError};
    use uuid::Uuid;

    use super::*;

    /// Encodes and decodes `item` with [`MessagePack`] as tarpc drives it; returns what was read.
    fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(item: &T) -> T {
        let mut codec = MessagePack::<T, T>::default();
        let bytes = Pin::new(&mut codec).serialize(item).expect("encodes");
        Pin::new(&mut codec).deserialize(&bytes::BytesMut::from(&bytes[..])).expect("decodes")
    }

    /// `Debug` stands in for `PartialEq`, which tarpc's generated enums do not derive.
    fn assert_round_trips<T: serde::Serialize + serde::de::DeserializeOwned + Debug>(item: T, why: &str) {
        assert_eq!(format!("{:?}", round_trip(&item)), format!("{item:?}"), "{why}");
    }

    fn entry(event_id: Option<Uuid>, sub: Option<&str>) -> LogEntry {
        LogEntry {
            name: "näme".into(),
            data: "line\n\"two\"\u{0}".into(),
            level: Level::Warning,
            event_id,
            sub: sub.map(Into::into),
            trace_id: None,
        }
    }

    fn stored(sub: Option<&str>, event_id: Option<Uuid>) -> StoredEntry {
        let at = chrono::DateTime::from_timestamp_millis(1_760_000_000_123).unwrap();
        StoredEntry {
            id: "65f1c0ffee0000000000abcd".into(),
            name: "n".into(),
            data: String::new(),
            level: Level::Error,
            event_id,
            sub: sub.map(Into::into),
            trace_id: sub.map(|_| "4bf92f3577b34da6a3ce929d0e0e4736".into()),
            created_at: at,
            updated_at: at + chrono::Duration::milliseconds(1),
        }
    }

    #[test]
    fn every_request_round_trips() {
        let id = Some(Uuid::new_v4());
        let cases = [
            (LoggerRequest::WriteLog { entry: entry(None, None) }, "no event id, no subject (sub skipped)"),
            (LoggerRequest::WriteLog { entry: entry(id, Some("42")) }, "an event id and a subject"),
            (LoggerRequest::WriteMany { entries: vec![entry(id, None), entry(None, Some("7"))] }, "a batch"),
            (LoggerRequest::WriteMany { entries: vec![] }, "an empty batch"),
            (
                LoggerRequest::WriteLog {
                    entry: entry(id, None).in_trace(Some("4bf92f3577b34da6a3ce929d0e0e4736".into())),
                },
                "an entry of a trace",
            ),
            (LoggerRequest::Recent { limit: 20, before: None, trace_id: None }, "the first page"),
            (
                LoggerRequest::Recent {
                    limit: u32::MAX,
                    before: Some("65f1c0ffee0000000000abcd".into()),
                    trace_id: None,
                },
                "a next page",
            ),
            (
                LoggerRequest::Recent {
                    limit: 5,
                    before: None,
                    trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
                },
                "one trace's entries",
            ),
            (LoggerRequest::Get { id: "65f1c0ffee0000000000abcd".into() }, "one entry"),
            (LoggerRequest::Ping {}, "a ping"),
        ];
        for (request, why) in cases {
            assert_round_trips(request, why);
        }
    }

    #[test]
    fn every_response_round_trips() {
        let id = Some(Uuid::new_v4());
        let cases = [
            (LoggerResponse::WriteLog(Ok("65f1c0ffee0000000000abcd".into())), "an id"),
            (LoggerResponse::WriteLog(Err(LogError::Invalid("`name`: must not be empty".into()))), "refused"),
            (LoggerResponse::WriteMany(Ok(vec!["a".into(), "b".into()])), "ids"),
            (LoggerResponse::WriteMany(Err(LogError::Unavailable("down".into()))), "store down"),
            (
                LoggerResponse::Recent(Ok(vec![stored(None, None), stored(Some("7"), id)])),
                "entries with and without sub",
            ),
            (LoggerResponse::Recent(Ok(vec![])), "no entries"),
            (LoggerResponse::Get(Ok(stored(None, id))), "one entry without a subject"),
            (LoggerResponse::Get(Err(LogError::NotFound("x".into()))), "not found"),
            (LoggerResponse::Ping(Ok(())), "pong"),
            (LoggerResponse::Ping(Err(LogError::Unavailable("down".into()))), "no store"),
        ];
        for (response, why) in cases {
            assert_round_trips(response, why);
        }
    }

    #[test]
    fn tarpcs_envelope_round_trips_with_its_deadline() {
        let mut context = context::current();
        context.deadline = Instant::now() + Duration::from_millis(1_500);
        let message = LoggerRequest::WriteLog { entry: entry(None, Some("42")) };
        let sent = ClientMessage::Request(Request { context, id: 7, message });
        let ClientMessage::Request(read) = round_trip(&sent) else { panic!("a request reads as a request") };
        assert_eq!(read.id, 7);
        assert_eq!(
            format!("{:?}", read.message),
            format!("{:?}", LoggerRequest::WriteLog { entry: entry(None, Some("42")) })
        );
        assert_eq!(read.context.trace_context, context.trace_context, "the trace travels");
        // The deadline travels as the time left: within the time this test took of the one sent.
        let left = read.context.deadline.saturating_duration_since(Instant::now());
        assert!(left <= Duration::from_millis(1_500) && left > Duration::from_millis(500), "{left:?}");

        let cancel = ClientMessage::<LoggerRequest>::Cancel { trace_context: context.trace_context, request_id: 7 };
        assert_round_trips(cancel, "a cancellation");
        let answered: Response<LoggerResponse> = Response { request_id: 7, message: Ok(LoggerResponse::Ping(Ok(()))) };
        assert_round_trips(answered, "an answer");
        let throttled: Response<LoggerResponse> = Response {
            request_id: 8,
            message: Err(ServerError::new(std::io::ErrorKind::WouldBlock, "throttled".into())),
        };
        assert_round_trips(throttled, "a server error");
    }

    #[test]
    fn structs_as_arrays_would_misread_an_entry_without_a_subject() {
        // What tokio-serde's own MessagePack format writes (`to_vec`): fields by position. The
        // skipped `sub` shifts `created_at` into its place. Maps (ours) do not depend on position.
        let entry = stored(None, None);
        let by_position = rmp_serde::to_vec(&entry).unwrap();
        assert!(rmp_serde::from_slice::<StoredEntry>(&by_position).is_err());
        assert_eq!(round_trip(&entry), entry);
    }
}
