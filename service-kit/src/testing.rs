//! Test support shared by every crate's tests: isolated databases, unique names, the SMTP
//! catcher's API and a bounded poller. Everything talks to the real servers that
//! `project/infra.sh up` starts (addresses overridable with the variables below).

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Administrative Postgres URL (a database that always exists).
pub const TEST_PG_URL: &str = "TEST_PG_URL";
pub const DEFAULT_PG_URL: &str = "postgres://postgres:password@127.0.0.1:5432/postgres";
/// MongoDB (or wire-compatible) server.
pub const TEST_MONGO_URL: &str = "TEST_MONGO_URL";
pub const DEFAULT_MONGO_URL: &str = "mongodb://127.0.0.1:27017";
/// RabbitMQ.
pub const TEST_RABBIT_URL: &str = "TEST_RABBIT_URL";
pub const DEFAULT_RABBIT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The SMTP catcher: SMTP port and HTTP API.
pub const TEST_SMTP_HOST: &str = "TEST_SMTP_HOST";
pub const TEST_SMTP_PORT: &str = "TEST_SMTP_PORT";
pub const TEST_MAILCATCHER_URL: &str = "TEST_MAILCATCHER_URL";
pub const DEFAULT_MAILCATCHER_URL: &str = "http://127.0.0.1:8025";

/// A test setting from the environment: the variable when set and not blank (trimmed), else
/// `default`.
pub fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// A response read whole: its status and its JSON envelope.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Answer {
    /// Reads `response`; panics, showing the body, when it is not JSON.
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let body =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("answered {status}, not JSON ({e}): {text:?}"));
        Self { status, body }
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_else(|| panic!("no message in {}", self.body))
    }

    /// The envelope of a failure: this status, `error` true and a message containing `message_part`.
    pub fn assert_error(&self, status: u16, message_part: &str, why: &str) {
        assert_eq!(self.status, status, "{why}: {}", self.body);
        assert_eq!(self.body["error"], true, "{why}: {}", self.body);
        assert!(self.message().contains(message_part), "{why}: {:?} should contain {message_part:?}", self.message());
    }
}

pub fn pg_admin_url() -> String {
    env_or(TEST_PG_URL, DEFAULT_PG_URL)
}
pub fn mongo_url() -> String {
    env_or(TEST_MONGO_URL, DEFAULT_MONGO_URL)
}
pub fn rabbit_url() -> String {
    env_or(TEST_RABBIT_URL, DEFAULT_RABBIT_URL)
}
pub fn smtp_host() -> String {
    env_or(TEST_SMTP_HOST, "127.0.0.1")
}
pub fn smtp_port() -> u16 {
    env_or(TEST_SMTP_PORT, "1025").parse().expect("TEST_SMTP_PORT is a port number")
}
pub fn mailcatcher_url() -> String {
    env_or(TEST_MAILCATCHER_URL, DEFAULT_MAILCATCHER_URL)
}

/// `prefix-<uuid>`: a queue, exchange or database name no other test uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Runs `work` on a fresh single-threaded runtime in its own thread: for cleanup from `Drop`,
/// which may run inside or outside a runtime.
fn block_on_side<F: Future<Output = ()> + Send + 'static>(work: F) {
    let handle = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(work)
    });
    let _ = handle.join();
}

/// A Postgres database of its own for one test; dropped (with its connections) on drop.
pub struct TestPostgres {
    /// The database's name.
    pub name: String,
    /// A URL that connects to it.
    pub url: String,
    admin_url: String,
}

impl TestPostgres {
    pub async fn create() -> Self {
        let admin_url = pg_admin_url();
        let name = unique_name("test").replace('-', "_");
        let (client, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach Postgres at {admin_url} (run `project/infra.sh up`): {e}"));
        tokio::spawn(connection);
        client.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.expect("create the test database");
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("{TEST_PG_URL} must end with /<database>"),
        };
        Self { name, url, admin_url }
    }

    /// A plain client connected to the test database, for assertions.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(connection);
        client
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        block_on_side(async move {
            if let Ok((client, connection)) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await {
                tokio::spawn(connection);
                let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
            }
        });
    }
}

/// A MongoDB database of its own for one test; dropped on drop.
pub struct TestMongo {
    pub url: String,
    pub name: String,
}

impl TestMongo {
    pub fn new() -> Self {
        Self { url: mongo_url(), name: unique_name("test").replace('-', "_") }
    }

    pub async fn client(&self) -> mongodb::Client {
        mongodb::Client::with_uri_str(&self.url).await.expect("a MongoDB client")
    }
}

impl Default for TestMongo {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestMongo {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        block_on_side(async move {
            if let Ok(client) = mongodb::Client::with_uri_str(&url).await {
                let _ = client.database(&name).drop().await;
            }
        });
    }
}

/// Polls `probe` until it returns `Some`, or panics with `what` after `timeout`.
/// For effects that happen asynchronously (a mail delivered, an event stored): the test
/// waits for the effect itself, never for a fixed time.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An address in a caught mail.
#[derive(Debug, Clone, Deserialize)]
pub struct CaughtAddress {
    pub address: String,
    #[serde(default)]
    pub name: String,
}

/// A mail as the catcher (maildev) shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct CaughtMail {
    pub id: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub from: Vec<CaughtAddress>,
    #[serde(default)]
    pub to: Vec<CaughtAddress>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    /// Header names in lower case.
    #[serde(default)]
    pub headers: serde_json::Value,
}

/// The SMTP catcher's HTTP API. Tests use a unique recipient each, so they never need to
/// clear the shared mailbox.
#[derive(Debug, Clone)]
pub struct MailCatcher {
    pub base_url: String,
    http: reqwest::Client,
}

impl MailCatcher {
    pub fn new() -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("an HTTP client");
        Self { base_url: mailcatcher_url(), http }
    }

    /// A recipient address no other test uses.
    pub fn unique_address() -> String {
        format!("{}@example.com", unique_name("rcpt"))
    }

    /// Every mail caught so far whose recipients include `to` (exact address, as sent).
    /// The catcher filters on its side, so a long-lived catcher full of mail stays fast.
    pub async fn mails_to(&self, to: &str) -> Vec<CaughtMail> {
        let url = format!("{}/email", self.base_url);
        let response = self
            .http
            .get(&url)
            .query(&[("to.address", to)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("cannot reach {url}: {e}"));
        let mails: Vec<CaughtMail> = response.json().await.expect("the catcher answers a JSON list");
        mails.into_iter().filter(|m| m.to.iter().any(|a| a.address.eq_ignore_ascii_case(to))).collect()
    }

    /// Waits until a mail to `to` has arrived and returns it.
    pub async fn wait_for_mail_to(&self, to: &str, timeout: Duration) -> CaughtMail {
        eventually(&format!("a mail to {to}"), timeout, || async { self.mails_to(to).await.into_iter().next() }).await
    }
}

impl Default for MailCatcher {
    fn default() -> Self {
        Self::new()
    }
}

/// `rabbitmqctl` (run as root, or by a user in the `rabbitmq` group).
pub const TEST_RABBITMQCTL: &str = "TEST_RABBITMQCTL";

/// Closes every RabbitMQ connection whose client-provided `connection_name` is `name`, as a
/// broker restart or a network cut would, and returns how many it closed. Only those: a test
/// must not close the connections of other tests running on the same broker
/// (`rabbitmqctl close_all_connections` would).
pub async fn close_rabbit_connections(name: &str) -> usize {
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        let ctl = env_or(TEST_RABBITMQCTL, "rabbitmqctl");
        let output = std::process::Command::new(&ctl)
            .args(["list_connections", "pid", "client_properties", "--quiet", "--no-table-headers"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {ctl}: {e}"));
        assert!(output.status.success(), "{ctl} list_connections failed: {}", String::from_utf8_lossy(&output.stderr));
        // One line per connection: `<rabbit@host.1.2.3>\t[{"connection_name","name"},...]`.
        // (The JSON formatter prints pids in a syntax close_connection does not accept.)
        let wanted = format!("{{\"connection_name\",\"{name}\"}}");
        let pids: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| line.contains(&wanted))
            .filter_map(|line| line.split('\t').next())
            .map(str::to_owned)
            .collect();
        for pid in &pids {
            let status = std::process::Command::new(&ctl)
                .args(["close_connection", pid, "closed by a test"])
                .output()
                .unwrap_or_else(|e| panic!("cannot run {ctl}: {e}"));
            assert!(
                status.status.success(),
                "{ctl} close_connection failed: {}",
                String::from_utf8_lossy(&status.stderr)
            );
        }
        pids.len()
    })
    .await
    .expect("the rabbitmqctl task")
}

/// Sends a request of the Go original (`contract::go_original`) to `base_url` as its client
/// sends it: its method, path, headers (a missing `Content-Type` stays missing) and exact body.
pub async fn send_as_the_go_original(base_url: &str, request: &contract::go_original::Request) -> Answer {
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).expect("an HTTP method");
    let mut call = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
        .request(method, format!("{base_url}{}", request.path))
        .body(request.body.clone());
    for (name, value) in &request.headers {
        call = call.header(name, value);
    }
    Answer::read(call.send().await.expect("the request is answered")).await
}
