//! `spawn_app()`, an own maildev instance for outage tests, and a counting SMTP proxy.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mailer::{Application, Settings};
use serde_json::{Value, json};
use service_kit::testing::{self, Answer, ChildServer, MailCatcher, ScratchDir, free_port};
use service_kit::{Env, HttpSettings};

/// The sender of mails without a `from` in these tests (not the default, to prove the setting is used).
pub const TEST_FROM_NAME: &str = "Mailer Tests";
pub const TEST_FROM_ADDRESS: &str = "mailer-tests@example.com";

/// A running mailer on its own port.
pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    /// The shared catcher's API (each test uses its own recipient).
    pub catcher: MailCatcher,
}

impl TestApp {
    /// `POST /send` with a JSON body.
    pub async fn send(&self, body: &Value) -> Answer {
        Answer::read(self.http.post(format!("{}/send", self.address)).json(body).send().await.expect("POST /send"))
            .await
    }

    /// `POST /send` with a raw body and content type.
    pub async fn send_raw(&self, body: impl Into<reqwest::Body>, content_type: &str) -> Answer {
        let request =
            self.http.post(format!("{}/send", self.address)).header(reqwest::header::CONTENT_TYPE, content_type);
        Answer::read(request.body(body).send().await.expect("POST /send")).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        Answer::read(self.http.get(format!("{}{path}", self.address)).send().await.expect("GET")).await
    }
}

/// A valid request to `to`.
pub fn mail_to(to: &str) -> Value {
    json!({"from": "sender@example.com", "to": to, "subject": "Test email", "message": "Hello world!"})
}

/// Settings for the shared catcher, port 0.
pub fn test_settings() -> Settings {
    test_settings_for_smtp_port(testing::smtp_port())
}

pub fn test_settings_for_smtp_port(smtp_port: u16) -> Settings {
    let env = Env::from_pairs([
        ("MAIL_HOST", testing::smtp_host()),
        ("MAIL_PORT", smtp_port.to_string()),
        ("FROM_NAME", TEST_FROM_NAME.to_owned()),
        ("FROM_ADDRESS", TEST_FROM_ADDRESS.to_owned()),
    ]);
    let mut settings = Settings::from_env(&env).expect("valid test settings");
    settings.http = HttpSettings::ephemeral();
    // Each test's own mail-job queue, so that no test takes another's (or a local stack's) jobs.
    settings.queue.exchange = testing::unique_name("mail-ex");
    settings.queue.queue = testing::unique_name("mail-q");
    settings.queue.rabbit_url = testing::rabbit_url().into();
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_settings()).await
}

pub async fn spawn_app_with(settings: Settings) -> TestApp {
    service_kit::telemetry::init_for_tests();
    let application = Application::build(settings).await.expect("the mailer builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("an HTTP client");
    TestApp { address, http, catcher: MailCatcher::new() }
}

/// A maildev of the test's own, on a given SMTP port: stopping it does not disturb other tests.
pub struct OwnMaildev {
    /// Declared before its mail directory: dropped (killed) first.
    server: ChildServer,
    _mails: ScratchDir,
    pub catcher: MailCatcher,
}

impl OwnMaildev {
    /// Starts maildev on `smtp_port` (and a free web port), with extra arguments, and waits until
    /// both ports accept connections.
    pub async fn start(smtp_port: u16, extra_args: &[&str]) -> Self {
        let binary = std::env::var("MAILDEV_BIN").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../.local/npm/node_modules/.bin/maildev").to_owned()
        });
        let web_port = free_port();
        let mails = ScratchDir::new("maildev");
        let mut command = Command::new(&binary);
        command
            .args(["--smtp", &smtp_port.to_string(), "--web", &web_port.to_string(), "--ip", "127.0.0.1"])
            .arg("--mail-directory")
            .arg(mails.path())
            .args(extra_args);
        let what = format!("our own maildev ({binary}; run `project/infra.sh up`)");
        let server = ChildServer::start(&what, command, &[web_port, smtp_port], Duration::from_secs(15)).await;
        let mut catcher = MailCatcher::new();
        catcher.base_url = format!("http://127.0.0.1:{web_port}");
        Self { server, _mails: mails, catcher }
    }

    /// Kills it (its SMTP port closes at once) and waits for the process to end.
    pub fn stop(self) {
        self.server.kill();
    }
}

/// A TCP proxy in front of an SMTP server that counts the connections going through it.
pub struct CountingProxy {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

impl CountingProxy {
    pub async fn start(upstream_host: String, upstream_port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a proxy port");
        let port = listener.local_addr().expect("an address").port();
        let (accepted, open) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let counters = (accepted.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counters.0.fetch_add(1, Ordering::SeqCst);
                counters.1.fetch_add(1, Ordering::SeqCst);
                let open = counters.1.clone();
                let upstream = (upstream_host.clone(), upstream_port);
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self { port, accepted, open }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}
