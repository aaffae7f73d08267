use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use contract::log::{Level, LogEntry};
use logger::batch::WriteStats;
use logger::{Application, Settings, StopHandle};
use mongodb::bson::Document;
use service_kit::logger_client::LoggerRpc;
use service_kit::testing::{TestMongo, eventually, unique_name};
use tokio::task::JoinHandle;

/// The RPC client's bound on a call in tests: above MongoDB's 2 s so that the logger's own
/// "unavailable" answer arrives before the client gives up.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(5);

pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    pub port: u16,
    pub rpc_port: u16,
    /// The workspace's shared RPC client, pointed at this logger.
    pub rpc: LoggerRpc,
    pub http: reqwest::Client,
    /// This test's database (dropped with the app).
    pub mongo: TestMongo,
    pub stop: StopHandle,
    pub server: JoinHandle<anyhow::Result<()>>,
    /// The writer's counters: `insert_many` calls and entries.
    pub write_stats: Arc<WriteStats>,
}

/// A logger on free ports with its own database on the shared MongoDB server.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Same, with settings adjusted first (batching, another MongoDB).
pub async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    service_kit::telemetry::init_for_tests();
    let mongo = TestMongo::new();
    let mut settings = Settings::ephemeral(mongo.url.clone(), mongo.name.clone());
    customise(&mut settings);
    let app = Application::build(settings).await.expect("the logger builds");
    let (port, rpc_port) = (app.port(), app.rpc_port());
    let stop = app.stop_handle();
    let write_stats = app.write_stats();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        write_stats,
        address: format!("http://127.0.0.1:{port}"),
        port,
        rpc_port,
        rpc: LoggerRpc::new(format!("127.0.0.1:{rpc_port}"), RPC_TIMEOUT),
        http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap(),
        mongo,
        stop,
        server,
    }
}

/// An INFO entry without an event id.
pub fn entry(name: &str, data: &str) -> LogEntry {
    LogEntry { name: name.into(), data: data.into(), level: Level::Info, event_id: None }
}

impl TestApp {
    pub async fn post_log(&self, body: &serde_json::Value) -> reqwest::Response {
        self.http.post(format!("{}/log", self.address)).json(body).send().await.expect("POST /log")
    }

    pub async fn post_log_raw(&self, body: Vec<u8>, content_type: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/log", self.address))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST /log")
    }

    pub async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.http.get(format!("{}{path_and_query}", self.address)).send().await.expect("GET")
    }

    /// The stored documents, as MongoDB has them.
    pub async fn stored(&self) -> Vec<Document> {
        use futures::TryStreamExt;
        let client = self.mongo.client().await;
        let logs = client.database(&self.mongo.name).collection::<Document>("logs");
        logs.find(Document::new()).await.expect("find").try_collect().await.expect("read documents")
    }

    pub async fn stored_count(&self) -> usize {
        self.stored().await.len()
    }

    /// Stops both servers and waits until they have.
    pub async fn stop(self) -> TestMongo {
        self.stop.stop().await;
        self.server.await.expect("the server task ends").expect("the server stops cleanly");
        self.mongo
    }
}

/// A SecantusDB server of the test's own, on a free port with a temporary storage directory,
/// so that the test can kill it without disturbing anybody else.
pub struct OwnMongo {
    pub port: u16,
    storage: PathBuf,
    child: Option<Child>,
}

impl OwnMongo {
    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }

    pub async fn start() -> Self {
        let port = free_port();
        let storage = std::env::temp_dir().join(unique_name("logger-secantus"));
        let mut mongo = Self { port, storage, child: None };
        mongo.restart().await;
        mongo
    }

    /// (Re)starts the server on the same port and storage, and waits until it accepts.
    pub async fn restart(&mut self) {
        let python = std::env::var("TEST_SECANTUS_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.local/venv/bin/python"));
        // --sync-on-commit: without it SecantusDB loses acknowledged writes when killed.
        let child = Command::new(&python)
            .args(["-m", "secantus", "--host", "127.0.0.1", "--port", &self.port.to_string(), "--standalone"])
            .arg("--sync-on-commit")
            .arg("--storage-path")
            .arg(&self.storage)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start SecantusDB with {} (run `project/infra.sh up`): {e}", python.display())
            });
        self.child = Some(child);
        let port = self.port;
        eventually("our SecantusDB to accept connections", Duration::from_secs(20), || async move {
            TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .await;
    }

    /// Kills the server (SIGKILL): MongoDB is gone, mid-test.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnMongo {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.storage);
    }
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
