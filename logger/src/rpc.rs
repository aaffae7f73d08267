//! The tarpc server: the `contract::rpc::Logger` trait over TCP with the shared client's codec,
//! [`MessagePack`] (structs as maps; its docs say why).
//!
//! The codec's share, measured as CPU time per `log` action of broker + logger (utime + stime
//! from `/proc/<pid>/stat` around `wrk -t2 -c64 -d15s`, JSON and MessagePack runs alternating,
//! on 2 cores under other load (load average 4-6), 1,400-2,600 actions/s, bound by SecantusDB).
//! Release: JSON 148, 173, 176 µs; MessagePack 104, 164, 141 µs: about −18% (broker 97 → 81,
//! logger 68 → 55), with a spread as large as the gain. Debug, as a steadier ratio: JSON 420
//! and 416 µs, MessagePack 342 and 352 µs, −17%. So the codec is a fifth of the cost; the rest
//! (HTTP, tasks and wake-ups per action at this low rate, the driver) is not profiled yet.
//!
//! One task per connection; within a connection, requests run concurrently (each in its own
//! task), at most [`MAX_IN_FLIGHT_PER_CONNECTION`] at a time: a client that sends more gets a
//! "throttled" error for the excess instead of unbounded memory use. Clients keep their
//! connection (the shared `LoggerRpc` multiplexes every call over one), so shutting down closes
//! the connections; clients reconnect to the next instance on their own.

use std::future::Future;

use contract::log::{LogEntry, LogError, StoredEntry};
use contract::rpc::Logger;
use futures::StreamExt;
use service_kit::logger_client::{MAX_FRAME_BYTES, MessagePack};
use tarpc::context::Context;
use tarpc::serde_transport::tcp;
use tarpc::server::{BaseChannel, Channel};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::service::LogService;

/// Concurrent requests one connection may have in flight (tarpc's client allows 1,000).
pub const MAX_IN_FLIGHT_PER_CONNECTION: usize = 1_000;

/// The trait's implementation: each call goes straight to [`LogService`].
#[derive(Clone)]
struct LoggerServer {
    logs: LogService,
}

/// The call's deadline, or the refusal of a call that arrived after it: tarpc aborts a call at
/// its deadline, but only when the channel next polls its timers, which may be after the call
/// has started. Writes queued past it are dropped by the writer ([`crate::batch`]).
fn live(ctx: &Context) -> Result<tokio::time::Instant, LogError> {
    let deadline = tokio::time::Instant::from(ctx.deadline);
    if deadline <= tokio::time::Instant::now() {
        return Err(crate::batch::deadline_passed());
    }
    Ok(deadline)
}

impl Logger for LoggerServer {
    async fn write_log(self, ctx: Context, entry: LogEntry) -> Result<String, LogError> {
        self.logs.write(entry, Some(live(&ctx)?)).await
    }

    async fn write_many(self, ctx: Context, entries: Vec<LogEntry>) -> Result<Vec<String>, LogError> {
        self.logs.write_many(entries, Some(live(&ctx)?)).await
    }

    async fn recent(
        self,
        ctx: Context,
        limit: u32,
        before: Option<String>,
        trace_id: Option<String>,
    ) -> Result<Vec<StoredEntry>, LogError> {
        live(&ctx)?;
        self.logs.recent(Some(limit), before, trace_id).await
    }

    async fn get(self, ctx: Context, id: String) -> Result<StoredEntry, LogError> {
        live(&ctx)?;
        self.logs.get(&id).await
    }

    async fn ping(self, _: Context) -> Result<(), LogError> {
        self.logs.ping().await
    }
}

/// Serves RPC on `listener` until `shutdown` completes, then closes every connection.
pub async fn serve(listener: TcpListener, logs: LogService, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let mut incoming = tcp::listen_on(listener, MessagePack::default).await?;
    incoming.config_mut().max_frame_length(MAX_FRAME_BYTES);
    let server = LoggerServer { logs };
    // Owned here, so that stopping (or dropping) the server ends every connection with it.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = incoming.next() => match accepted {
                Some(Ok(transport)) => {
                    let peer = transport.peer_addr().ok();
                    tracing::debug!(?peer, "RPC connection opened");
                    let server = server.clone();
                    connections.spawn(async move {
                        BaseChannel::with_defaults(transport)
                            .max_concurrent_requests(MAX_IN_FLIGHT_PER_CONNECTION)
                            .execute(server.serve())
                            .for_each(|request| async move {
                                tokio::spawn(request);
                            })
                            .await;
                        tracing::debug!(?peer, "RPC connection closed");
                    });
                }
                Some(Err(error)) => {
                    // Usually out of file descriptors: pause rather than spin.
                    tracing::warn!(%error, "cannot accept an RPC connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                None => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    tracing::info!(open = connections.len(), "RPC server stopping");
    connections.shutdown().await;
    Ok(())
}
