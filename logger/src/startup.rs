//! Building and running the service: the HTTP server and the tarpc server over one [`LogService`].

use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use anyhow::Context;
use service_kit::Readiness;
use service_kit::server::{HttpService, bind};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::routes;
use crate::rpc;
use crate::service::LogService;
use crate::settings::Settings;
use crate::store::LogStore;

/// A built logger: both listeners bound, not yet serving.
pub struct Application {
    /// The real HTTP port (settings may ask for 0).
    port: u16,
    /// The real RPC port.
    rpc_port: u16,
    /// The HTTP server; resolves when it stopped (SIGTERM/SIGINT, or [`StopHandle::stop`]).
    http: Server,
    /// The RPC listener, served by `run_until_stopped`.
    rpc_listener: TcpListener,
    logs: LogService,
    /// Set to `true` to stop the RPC server.
    stop: Arc<watch::Sender<bool>>,
}

/// Stops a running [`Application`] from elsewhere (tests restart a logger with it).
#[derive(Clone)]
pub struct StopHandle {
    http: ServerHandle,
    rpc: Arc<watch::Sender<bool>>,
}

impl StopHandle {
    /// Stops both servers: HTTP gracefully, RPC by closing its connections.
    pub async fn stop(&self) {
        self.rpc.send_replace(true);
        self.http.stop(true).await;
    }
}

impl Application {
    /// Binds both ports and prepares the store. MongoDB is not required to be up: the indexes
    /// are created now when it is, else by the first write that reaches it, and `/ready`
    /// reports it until then.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::metrics::describe();
        let store = LogStore::new(&settings.mongo).await?;
        if let Err(error) = store.ensure_indexes().await {
            tracing::warn!(%error, "MongoDB not reachable at start; indexes will be created by the first write");
        }
        let logs = LogService::new(store, &settings.batch, settings.mongo.op_timeout);

        let rpc_listener = TcpListener::bind((settings.http.host.as_str(), settings.rpc_port))
            .await
            .with_context(|| format!("cannot bind the RPC port {}:{}", settings.http.host, settings.rpc_port))?;
        let rpc_port = rpc_listener.local_addr()?.port();
        let (listener, port) = bind(&settings.http)
            .with_context(|| format!("cannot bind the HTTP port {}:{}", settings.http.host, settings.http.port))?;

        let ready_logs = logs.clone();
        let readiness = Readiness::new().check("mongodb", move || {
            let logs = ready_logs.clone();
            async move { logs.ping().await.map_err(|e| e.to_string()) }
        });
        let http = HttpService::new(&settings.http, readiness).run(listener, logs.clone(), routes::configure)?;
        tracing::info!(port, rpc_port, database = %settings.mongo.database, batch = ?settings.batch, "logger built");
        let (stop, _) = watch::channel(false);
        Ok(Self { port, rpc_port, http, rpc_listener, logs, stop: Arc::new(stop) })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn rpc_port(&self) -> u16 {
        self.rpc_port
    }

    /// Counters of the writer: `insert_many` calls and the entries they carried.
    pub fn write_stats(&self) -> Arc<crate::batch::WriteStats> {
        self.logs.write_stats()
    }

    /// A handle that stops the servers once they run.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle { http: self.http.handle(), rpc: self.stop.clone() }
    }

    /// Serves HTTP and RPC until SIGTERM/SIGINT (or [`StopHandle::stop`]); stopping either
    /// stops both.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application { http, rpc_listener, logs, stop, .. } = self;
        let http_handle = http.handle();
        let mut stopped = stop.subscribe();
        let rpc = rpc::serve(rpc_listener, logs, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        });
        tokio::pin!(http, rpc);
        tokio::select! {
            result = &mut http => {
                tracing::info!(?result, "HTTP server stopped; stopping the RPC server");
                stop.send_replace(true);
                rpc.await.context("RPC server failed")?;
                result.context("HTTP server failed")?;
            }
            result = &mut rpc => {
                tracing::info!(?result, "RPC server stopped; stopping the HTTP server");
                // `stop` sends the command at once; its completion is reported by the server
                // future itself, so await that rather than the handle's future.
                drop(http_handle.stop(true));
                http.await.context("HTTP server failed")?;
                result.context("RPC server failed")?;
            }
        }
        tracing::info!("logger stopped");
        Ok(())
    }
}
