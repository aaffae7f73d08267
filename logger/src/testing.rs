//! An in-process logger for tests (feature `testing`): the broker's, the listener's and the
//! logger's own tests start one on free ports over a MongoDB database of the test's own.

use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::Document;
use service_kit::testing::TestMongo;
use tokio::task::JoinHandle;

use crate::batch::WriteStats;
use crate::{Application, Settings, StopHandle};

/// How long a graceful stop may take in a test before it counts as hanging.
pub const STOP_BOUND: Duration = Duration::from_secs(5);

/// A logger serving HTTP and RPC in this process.
pub struct TestLogger {
    /// `127.0.0.1:<rpc port>`, for `LoggerRpc`.
    pub rpc_addr: String,
    pub rpc_port: u16,
    /// `http://127.0.0.1:<port>`.
    pub http_url: String,
    pub port: u16,
    /// Its database: dropped with the logger, handed back by [`TestLogger::stop`] and
    /// [`TestLogger::kill`] for a restart over the same entries.
    pub mongo: TestMongo,
    /// The writer's counters: `insert_many` calls and entries.
    pub write_stats: Arc<WriteStats>,
    stop: StopHandle,
    server: JoinHandle<anyhow::Result<()>>,
}

impl TestLogger {
    /// A logger on free ports over `mongo`.
    pub async fn spawn(mongo: TestMongo) -> Self {
        Self::spawn_with(mongo, |_| {}).await
    }

    /// The same, with its settings adjusted first (batching, another MongoDB, a fixed RPC port
    /// for a restart).
    pub async fn spawn_with(mongo: TestMongo, customise: impl FnOnce(&mut Settings)) -> Self {
        service_kit::telemetry::init_for_tests();
        let mut settings = Settings::ephemeral(mongo.url.clone(), mongo.name.clone());
        customise(&mut settings);
        let app = Application::build(settings).await.expect("the logger builds");
        let (port, rpc_port) = (app.port(), app.rpc_port());
        let stop = app.stop_handle();
        let write_stats = app.write_stats();
        let server = tokio::spawn(app.run_until_stopped());
        Self {
            rpc_addr: format!("127.0.0.1:{rpc_port}"),
            rpc_port,
            http_url: format!("http://127.0.0.1:{port}"),
            port,
            mongo,
            write_stats,
            stop,
            server,
        }
    }

    /// Stops it from elsewhere (a test that stops it while it is in use).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Every entry stored in its database, as MongoDB has it.
    pub async fn stored_logs(&self) -> Vec<Document> {
        self.mongo.stored_logs().await
    }

    /// Stops it gracefully (HTTP drains its requests, RPC closes its connections) and waits, at
    /// most [`STOP_BOUND`], until both servers have stopped. Returns its database.
    pub async fn stop(self) -> TestMongo {
        let stopped = async {
            self.stop.stop().await;
            self.server.await.expect("the logger task ends").expect("the logger stops cleanly");
        };
        tokio::time::timeout(STOP_BOUND, stopped).await.expect("the logger stops within the bound");
        self.mongo
    }

    /// Kills it, as a crash would: its task is dropped mid-work, so its RPC port closes and
    /// its connections are cut without an answer. Returns its database.
    pub async fn kill(self) -> TestMongo {
        self.server.abort();
        let _ = self.server.await;
        self.mongo
    }
}
