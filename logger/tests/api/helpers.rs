//! `spawn_app()`: a [`TestLogger`] with the shared RPC client and an HTTP client pointed at it,
//! and a SecantusDB of the test's own for the tests that kill MongoDB.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use contract::log::{Level, LogEntry};
use logger::Settings;
use logger::testing::TestLogger;
use mongodb::bson::Document;
use service_kit::logger_client::LoggerRpc;
use service_kit::testing::{Answer, ChildServer, ScratchDir, TestMongo, free_port};

/// The RPC client's bound on a call in tests: above MongoDB's 2 s so that the logger's own
/// "unavailable" answer arrives before the client gives up.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(5);

pub struct TestApp {
    pub logger: TestLogger,
    /// The workspace's shared RPC client, pointed at this logger.
    pub rpc: LoggerRpc,
    pub http: reqwest::Client,
}

/// A logger on free ports with its own database on the shared MongoDB server.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Same, with settings adjusted first (batching, another MongoDB).
pub async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    let logger = TestLogger::spawn_with(TestMongo::new(), customise).await;
    TestApp {
        rpc: LoggerRpc::new(logger.rpc_addr.clone(), RPC_TIMEOUT),
        http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap(),
        logger,
    }
}

/// An INFO entry without an event id.
pub fn entry(name: &str, data: &str) -> LogEntry {
    LogEntry { name: name.into(), data: data.into(), level: Level::Info, event_id: None, sub: None, trace_id: None }
}

impl TestApp {
    pub async fn post_log(&self, body: &serde_json::Value) -> Answer {
        let response =
            self.http.post(format!("{}/log", self.logger.http_url)).json(body).send().await.expect("POST /log");
        Answer::read(response).await
    }

    pub async fn post_log_raw(&self, body: Vec<u8>, content_type: &str) -> Answer {
        let request = self.http.post(format!("{}/log", self.logger.http_url)).header("Content-Type", content_type);
        Answer::read(request.body(body).send().await.expect("POST /log")).await
    }

    pub async fn get(&self, path_and_query: &str) -> Answer {
        Answer::read(self.http.get(format!("{}{path_and_query}", self.logger.http_url)).send().await.expect("GET"))
            .await
    }

    /// The stored documents, as MongoDB has them.
    pub async fn stored(&self) -> Vec<Document> {
        self.logger.stored_logs().await
    }

    pub async fn stored_count(&self) -> usize {
        self.stored().await.len()
    }

    /// Stops both servers and waits until they have.
    pub async fn stop(self) -> TestMongo {
        self.logger.stop().await
    }
}

/// `TEST_SECANTUS_PYTHON`: the Python that runs SecantusDB (default: the project's venv).
pub const TEST_SECANTUS_PYTHON: &str = "TEST_SECANTUS_PYTHON";

/// SecantusDB as `python -m secantus --standalone --sync-on-commit` starts it, with the TTL
/// monitor's period as the third argument (port, storage path, seconds).
const SECANTUS_WITH_TTL_SWEEP: &str = "
import sys
from secantus.server import SecantusDBServer
port, path, period = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
server = SecantusDBServer('127.0.0.1', port, path, replica_set_name=None, sync_on_commit=True, ttl_sweep_seconds=period)
server.start()
server.wait()
";

/// A SecantusDB server of the test's own, on a free port with a temporary storage directory,
/// so that the test can kill it without disturbing anybody else.
pub struct OwnMongo {
    pub port: u16,
    /// Declared before the storage: dropped (killed) first.
    server: Option<ChildServer>,
    storage: ScratchDir,
    /// The TTL monitor's period, when not SecantusDB's (and mongod's) 60 s.
    ttl_sweep: Option<Duration>,
}

impl OwnMongo {
    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }

    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// One whose TTL monitor runs every `period`, so that a test sees expiry without waiting a minute.
    pub async fn start_with_ttl_sweep(period: Duration) -> Self {
        Self::start_with(Some(period)).await
    }

    async fn start_with(ttl_sweep: Option<Duration>) -> Self {
        let mut mongo =
            Self { port: free_port(), server: None, storage: ScratchDir::new("logger-secantus"), ttl_sweep };
        mongo.restart().await;
        mongo
    }

    /// (Re)starts the server on the same port and storage, and waits until it accepts.
    pub async fn restart(&mut self) {
        let python = std::env::var(TEST_SECANTUS_PYTHON)
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.local/venv/bin/python"));
        let mut command = Command::new(&python);
        match self.ttl_sweep {
            None => {
                command
                    .args(["-m", "secantus", "--host", "127.0.0.1", "--port", &self.port.to_string(), "--standalone"])
                    // Without it SecantusDB loses acknowledged writes when killed.
                    .arg("--sync-on-commit")
                    .arg("--storage-path")
                    .arg(self.storage.path());
            }
            // Its command line does not pass `storage.ttl_sweep_seconds` on (0.7.0b3: the
            // configuration file's value is read, then dropped), so through its Python API.
            Some(period) => {
                command
                    .args(["-c", SECANTUS_WITH_TTL_SWEEP, &self.port.to_string()])
                    .arg(self.storage.path())
                    .arg(period.as_secs_f64().to_string());
            }
        }
        let what = format!("our SecantusDB ({}; run `project/infra.sh up`)", python.display());
        self.server = Some(ChildServer::start(&what, command, &[self.port], Duration::from_secs(20)).await);
    }

    /// Kills the server (SIGKILL): MongoDB is gone, mid-test.
    pub fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill();
        }
    }
}
