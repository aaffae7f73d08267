//! Starting a broker on port 0 against downstreams of the test's choosing, and small servers
//! that stand in for a downstream that is down or hangs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use broker::{Application, Settings};
use serde_json::Value;
use service_kit::HttpSettings;
pub use service_kit::testing::Answer;
use service_kit::testing::closed_port;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running broker and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    pub http: reqwest::Client,
    /// The settings it was started with.
    pub settings: Settings,
}

impl TestApp {
    /// `POST /handle` with a JSON body.
    pub async fn handle(&self, body: &Value) -> Answer {
        let response =
            self.http.post(format!("{}/handle", self.address)).json(body).send().await.expect("POST /handle");
        Answer::read(response).await
    }

    /// `POST /handle` with a JSON body and `Authorization: <authorization>`.
    pub async fn handle_authorized(&self, body: &Value, authorization: &str) -> Answer {
        let request = self.http.post(format!("{}/handle", self.address)).header("Authorization", authorization);
        Answer::read(request.json(body).send().await.expect("POST /handle")).await
    }

    /// `POST /handle` with any body and content type.
    pub async fn handle_raw(&self, content_type: Option<&str>, body: impl Into<reqwest::Body>) -> Answer {
        let mut request = self.http.post(format!("{}/handle", self.address)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        Answer::read(request.send().await.expect("POST /handle")).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        Answer::read(self.http.get(format!("{}{path}", self.address)).send().await.expect("GET")).await
    }
}

/// Starts a broker with `settings` (its port is replaced by 0) and returns once it serves.
pub async fn spawn_broker(mut settings: Settings) -> TestApp {
    service_kit::telemetry::init_for_tests();
    // A free loopback port; the test's request bounds stay.
    settings.http = HttpSettings { body_timeout: settings.http.body_timeout, ..HttpSettings::ephemeral() };
    let app = Application::build(settings.clone()).await.expect("the broker builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client");
    TestApp { address, http, settings }
}

/// Settings whose four downstreams are all at closed ports, with short timeouts. No action
/// needs a token (`PROTECTED_ACTIONS=none`): the token tests (`tokens.rs`) protect explicitly.
/// No rate limit either: the storms and tables of other tests are not about it (`limits.rs` is).
/// No circuit breaker: each request reaches its downstream, so that a down one answers 502 and
/// a hung one 504 however many requests a test makes (`breakers.rs` switches them on).
pub fn settings_with_downstreams_down() -> Settings {
    let mut settings = Settings::from_env(&service_kit::Env::default()).expect("default settings");
    settings.protect = broker::protect::ProtectSettings::open();
    settings.limits = broker::limits::LimitSettings::off();
    settings.breaker = broker::breaker::BreakerSettings::off();
    settings.auth_url = format!("http://127.0.0.1:{}", closed_port());
    settings.mailer_url = format!("http://127.0.0.1:{}", closed_port());
    settings.logger_rpc_addr = format!("127.0.0.1:{}", closed_port());
    settings.rabbit_url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", closed_port()).into();
    settings.exchange = service_kit::testing::unique_name("broker-test");
    settings.queue = service_kit::testing::unique_name("broker-test-q");
    settings.mail_exchange = service_kit::testing::unique_name("broker-test-mail");
    settings.mail_queue = service_kit::testing::unique_name("broker-test-mail-q");
    for timeout in [
        &mut settings.auth_timeout,
        &mut settings.logger_timeout,
        &mut settings.mailer_timeout,
        &mut settings.rabbit_timeout,
    ] {
        *timeout = Duration::from_secs(2);
    }
    settings
}

/// A TCP server that accepts connections and never answers: a downstream that hangs.
/// Counts the connections it accepted, so a test can tell whether anything reached it.
pub struct HangingServer {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl HangingServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("an address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            // Held, never read from or written to, until the server is dropped.
            let mut held: Vec<TcpStream> = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        Self { addr, accepted, task }
    }

    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for HangingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Four hanging servers, one per downstream, and settings pointing the broker at them.
pub struct HangingDownstreams {
    pub auth: HangingServer,
    pub logger: HangingServer,
    pub mailer: HangingServer,
    pub rabbit: HangingServer,
}

impl HangingDownstreams {
    pub async fn start() -> Self {
        Self {
            auth: HangingServer::start().await,
            logger: HangingServer::start().await,
            mailer: HangingServer::start().await,
            rabbit: HangingServer::start().await,
        }
    }

    /// Broker settings pointing at these servers, every hop bounded by `timeout`.
    pub fn settings(&self, timeout: Duration) -> Settings {
        let mut settings = settings_with_downstreams_down();
        settings.auth_url = format!("http://{}", self.auth.addr);
        settings.mailer_url = format!("http://{}", self.mailer.addr);
        settings.logger_rpc_addr = self.logger.addr.to_string();
        settings.rabbit_url = format!("amqp://guest:guest@{}/%2f", self.rabbit.addr).into();
        settings.auth_timeout = timeout;
        settings.logger_timeout = timeout;
        settings.mailer_timeout = timeout;
        settings.rabbit_timeout = timeout;
        settings
    }

    pub fn connections(&self) -> usize {
        self.auth.connections() + self.logger.connections() + self.mailer.connections() + self.rabbit.connections()
    }
}
