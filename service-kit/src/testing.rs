//! Test support shared by every crate's tests, written once. Everything talks to the real
//! servers that `project/infra.sh up` starts (addresses overridable with the variables below,
//! defaults from [`crate::wiring`]).
//!
//! - this module: the servers' addresses, [`unique_name`], [`free_port`], [`closed_port`], the
//!   bounded poller [`eventually`];
//! - [`answer`]: [`Answer`], the one way to read an HTTP response (status, headers, envelope);
//! - [`edge`]: [`assert_edge_answers`], the security headers and refusals every service has;
//! - [`logs`]: [`capture_logs`], the process's log lines as a service writes them;
//! - [`stores`]: a Postgres or MongoDB database of a test's own, and [`stored_logs`];
//! - [`mail`]: the SMTP catcher's API;
//! - [`metrics`]: a service's `GET /metrics` read by series ([`scrape`]), `promtool` on it;
//! - [`otlp`]: an [`OtlpReceiver`] of a test's own, the spans a service exports, decoded;
//! - [`process`]: [`ChildServer`], a server process of a test's own, and [`ScratchDir`];
//! - [`proxy`]: a TCP [`Proxy`] in front of a real server that holds back or cuts chosen chunks,
//!   or plays a server down or hung;
//! - [`raw`]: requests written by hand over TCP (a stalled body, a stalled header section);
//! - [`rabbit`]: closing a test's RabbitMQ connections from the outside (through
//!   `rabbitmqctl`, so without an AMQP client);
//! - [`rabbit_cluster`]: a RabbitMQ cluster of a test's own ([`RabbitCluster`]), whose nodes it
//!   can stop and start.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::wiring;

pub mod answer;
pub mod edge;
pub mod logs;
pub mod mail;
pub mod metrics;
pub mod otlp;
pub mod process;
pub mod proxy;
pub mod rabbit;
pub mod rabbit_cluster;
pub mod raw;
pub mod stores;

pub use answer::Answer;
pub use edge::{Undeclared, assert_edge_answers};
pub use logs::{CapturedLogs, capture_logs};
pub use mail::{CaughtAddress, CaughtMail, MailCatcher};
pub use metrics::{Scrape, assert_promtool_passes, scrape};
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use process::{ChildServer, ScratchDir};
pub use proxy::Proxy;
#[cfg(feature = "amqp")]
pub use rabbit::delete_topology;
pub use rabbit::{TEST_RABBITMQCTL, close_rabbit_connections};
pub use rabbit_cluster::{RabbitCluster, TEST_RABBITMQ_SBIN};
pub use raw::{RawAnswer, assert_short_body_refused, assert_unread_short_body_answered_at_once, send_raw, short_body};
pub use stores::{TestMongo, TestPostgres, stored_logs};

/// Administrative Postgres URL (a database that always exists; default: `postgres` on the
/// server of [`wiring::DSN`]).
pub const TEST_PG_URL: &str = "TEST_PG_URL";
/// MongoDB (or wire-compatible) server.
pub const TEST_MONGO_URL: &str = "TEST_MONGO_URL";
pub const DEFAULT_MONGO_URL: &str = wiring::MONGO_URL;
/// RabbitMQ.
pub const TEST_RABBIT_URL: &str = "TEST_RABBIT_URL";
pub const DEFAULT_RABBIT_URL: &str = wiring::RABBIT_URL;
/// The SMTP catcher: SMTP port and HTTP API.
pub const TEST_SMTP_HOST: &str = "TEST_SMTP_HOST";
pub const TEST_SMTP_PORT: &str = "TEST_SMTP_PORT";
/// The catcher's HTTP API (default: [`wiring::MAILCATCHER_PORT`] on the loopback).
pub const TEST_MAILCATCHER_URL: &str = "TEST_MAILCATCHER_URL";

/// A test setting from the environment: the variable when set and not blank (trimmed), else
/// `default`.
pub fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

pub fn pg_admin_url() -> String {
    let (server, _) = wiring::DSN.rsplit_once('/').expect("the DSN ends with /<database>");
    env_or(TEST_PG_URL, &format!("{server}/postgres"))
}
pub fn mongo_url() -> String {
    env_or(TEST_MONGO_URL, DEFAULT_MONGO_URL)
}
pub fn rabbit_url() -> String {
    env_or(TEST_RABBIT_URL, DEFAULT_RABBIT_URL)
}
pub fn smtp_host() -> String {
    env_or(TEST_SMTP_HOST, wiring::LOCAL_HOST)
}
pub fn smtp_port() -> u16 {
    env_or(TEST_SMTP_PORT, &wiring::SMTP_PORT.to_string()).parse().expect("TEST_SMTP_PORT is a port number")
}
pub fn mailcatcher_url() -> String {
    env_or(TEST_MAILCATCHER_URL, &format!("http://{}:{}", wiring::LOCAL_HOST, wiring::MAILCATCHER_PORT))
}

/// `prefix-<uuid>`: a queue, exchange or database name no other test uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A loopback port nothing listens on: bound to port 0, then released, for a server of the
/// test's own (a child process) to bind. For a downstream that must stay down use
/// [`closed_port`]: a released port can be taken by another test's server.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind((wiring::LOCAL_HOST, 0)).expect("bind a free loopback port");
    listener.local_addr().expect("the bound address").port()
}

/// A loopback port that refuses connections for the rest of the test process: a downstream
/// that is down. A socket bound to it that never listens holds it (without `SO_REUSEADDR`, so
/// no other socket can bind it and port 0 never yields it), and the kernel answers a connect
/// with a reset. The socket is leaked on purpose: nextest runs each test in a process of its
/// own, which releases it.
pub fn closed_port() -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket.bind((std::net::Ipv4Addr::LOCALHOST, 0).into()).expect("bind a loopback port");
    let port = socket.local_addr().expect("the bound address").port();
    std::mem::forget(socket);
    port
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

/// Runs `work` on a fresh single-threaded runtime in its own thread: for cleanup from `Drop`,
/// which may run inside or outside a runtime.
fn block_on_side<F: Future<Output = ()> + Send + 'static>(work: F) {
    let handle = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(work)
    });
    let _ = handle.join();
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
