//! The SMTP side: a small pool of lettre SMTP connections, shared by every request.
//!
//! Why not lettre's own pooled `AsyncSmtpTransport`: lettre 0.11.23 never sets `TCP_NODELAY`,
//! and it writes a message body and its `\r\n.\r\n` terminator in two writes, so Nagle's
//! algorithm holds the terminator until the server's delayed ACK (40 ms on Linux): every mail
//! costs 40 ms of waiting, whatever the server (fixed upstream in lettre PR #1159, unreleased).
//! Its pool also puts a connection back after a cancelled (timed out) send, half-way through a
//! command, and it does not cap how many connections are open at once. Here:
//!
//! - connections are opened by us with `TCP_NODELAY`, then handed to lettre's
//!   `AsyncSmtpConnection` (greeting, EHLO, STARTTLS, AUTH, the SMTP dialogue);
//! - a semaphore caps open connections at `pool_size`; requests beyond it wait (bounded by the
//!   send timeout);
//! - an idle connection is tested with `NOOP` before reuse and replaced if dead, so the service
//!   recovers by itself when the SMTP server comes back;
//! - a connection is put back only after a send that completed; a timed-out send drops it;
//! - a reaper closes connections idle for longer than `pool_idle_timeout`.
//!
//! Nothing is connected at start-up: the service starts while the SMTP server is down, reports
//! it on `/ready` and answers 502 to sends.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::settings::{Encryption, SmtpSettings};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Sends mails through the configured SMTP server. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct SmtpMailer {
    inner: Arc<Inner>,
}

struct Inner {
    host: String,
    port: u16,
    /// How the connection is secured, with the TLS parameters built once.
    tls: TlsMode,
    /// The `EHLO` name.
    hello_name: ClientId,
    /// `AUTH` with these when set.
    credentials: Option<Credentials>,
    /// Bounds TCP connect, TLS, greeting, EHLO and AUTH.
    connect_timeout: Duration,
    /// Bounds a whole send, waiting for a connection included.
    send_timeout: Duration,
    /// Most connections kept idle (and, through `permits`, open).
    pool_size: usize,
    /// Idle connections older than this are closed.
    idle_timeout: Duration,
    /// One permit per connection that may be in use at once.
    permits: Semaphore,
    /// Connections waiting for reuse, most recently used last. Never locked across an `await`.
    idle: Mutex<Vec<IdleConnection>>,
    /// `host:port`, for logs and readiness reports.
    server: String,
}

enum TlsMode {
    None,
    StartTls(TlsParameters),
    Implicit(TlsParameters),
}

struct IdleConnection {
    connection: AsyncSmtpConnection,
    since: Instant,
}

/// Why a mail was not sent. `Display` is safe to show a caller; `Debug` has the cause.
#[derive(thiserror::Error)]
pub enum SmtpError {
    /// Connection refused or reset, TLS or protocol failure: the server is down or not speaking SMTP.
    #[error("cannot reach the mail server; the mail was not sent")]
    Unreachable(#[source] BoxError),
    /// The server answered with a 4xx or 5xx reply (to AUTH, MAIL, RCPT or DATA).
    #[error("the mail server refused the mail (SMTP {code}); it was not sent")]
    Refused {
        code: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// No answer in time; the mail may or may not have been accepted.
    #[error("the mail server did not confirm the mail within {0:?}")]
    Timeout(Duration),
}

impl std::fmt::Debug for SmtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        service_kit::http::error_chain_fmt(self, f)
    }
}

impl From<lettre::transport::smtp::Error> for SmtpError {
    fn from(error: lettre::transport::smtp::Error) -> Self {
        match error.status() {
            Some(code) => SmtpError::Refused { code: code.to_string(), source: error },
            None => SmtpError::Unreachable(error.into()),
        }
    }
}

impl SmtpMailer {
    /// Prepares the pool; connects nothing yet. Must run inside a tokio runtime (it spawns the
    /// idle-connection reaper, which ends when the last clone is dropped).
    pub fn new(settings: &SmtpSettings) -> Result<Self, lettre::transport::smtp::Error> {
        let tls = match settings.encryption {
            Encryption::None => TlsMode::None,
            Encryption::StartTls => TlsMode::StartTls(TlsParameters::new(settings.host.clone())?),
            Encryption::Tls => TlsMode::Implicit(TlsParameters::new(settings.host.clone())?),
        };
        let hello_name = match settings.domain.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => ClientId::Ipv4(ip),
            Ok(IpAddr::V6(ip)) => ClientId::Ipv6(ip),
            Err(_) => ClientId::Domain(settings.domain.clone()),
        };
        let credentials = Some(&settings.username)
            .filter(|username| !username.is_empty())
            .map(|username| Credentials::new(username.clone(), settings.password.clone()));
        let pool_size = settings.pool_size.max(1) as usize;
        let inner = Arc::new(Inner {
            host: settings.host.clone(),
            port: settings.port,
            tls,
            hello_name,
            credentials,
            connect_timeout: settings.connect_timeout,
            send_timeout: settings.send_timeout,
            pool_size,
            idle_timeout: settings.pool_idle_timeout,
            permits: Semaphore::new(pool_size),
            idle: Mutex::new(Vec::with_capacity(pool_size)),
            server: format!("{}:{}", settings.host, settings.port),
        });
        tokio::spawn(reap_idle_connections(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// Sends `message`, giving up after the send timeout.
    #[tracing::instrument(name = "smtp send", skip_all, fields(server = %self.inner.server))]
    pub async fn send(&self, message: Message) -> Result<(), SmtpError> {
        let envelope = message.envelope().clone();
        let bytes = message.formatted();
        let timeout = self.inner.send_timeout;
        tokio::time::timeout(timeout, self.inner.send(&envelope, &bytes))
            .await
            .unwrap_or(Err(SmtpError::Timeout(timeout)))
    }

    /// Gets a working connection (tested idle one or new) within the connect timeout.
    pub async fn ping(&self) -> Result<(), String> {
        let inner = &self.inner;
        match tokio::time::timeout(inner.connect_timeout, inner.checkout()).await {
            Ok(Ok(connection)) => {
                inner.checkin(connection);
                Ok(())
            }
            Ok(Err(error)) => Err(format!("{}: {}", inner.server, error_chain(&error))),
            Err(_) => Err(format!("{}: no answer within {:?}", inner.server, inner.connect_timeout)),
        }
    }
}

impl Inner {
    async fn send(&self, envelope: &Envelope, bytes: &[u8]) -> Result<(), SmtpError> {
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        let mut connection = self.checkout().await?;
        // On failure lettre has already sent QUIT and marked the connection broken: dropped here.
        let response = connection.send(envelope, bytes).await?;
        tracing::debug!(code = %response.code(), "mail accepted");
        self.checkin(connection);
        Ok(())
    }

    /// An idle connection that still answers `NOOP`, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        while let Some(mut connection) = self.pop_idle() {
            if connection.test_connected().await {
                return Ok(connection);
            }
            tracing::debug!(server = %self.server, "dropping a dead pooled connection");
        }
        self.connect().await
    }

    fn pop_idle(&self) -> Option<AsyncSmtpConnection> {
        self.idle.lock().expect("the pool lock is never poisoned").pop().map(|idle| idle.connection)
    }

    /// Keeps a healthy connection for reuse, unless the pool is full.
    fn checkin(&self, connection: AsyncSmtpConnection) {
        if connection.has_broken() {
            return;
        }
        let mut idle = self.idle.lock().expect("the pool lock is never poisoned");
        if idle.len() < self.pool_size {
            idle.push(IdleConnection { connection, since: Instant::now() });
        }
    }

    /// TCP (with `TCP_NODELAY`), TLS as configured, greeting, EHLO, AUTH.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        let connect = async {
            let mut connection = match &self.tls {
                // lettre needs its own TCP stream for TLS from the first byte; Nagle stays on there.
                TlsMode::Implicit(tls) => {
                    AsyncSmtpConnection::connect_tokio1(
                        (self.host.as_str(), self.port),
                        None,
                        &self.hello_name,
                        Some(tls.clone()),
                        None,
                    )
                    .await?
                }
                TlsMode::None | TlsMode::StartTls(_) => {
                    let stream = TcpStream::connect((self.host.as_str(), self.port))
                        .await
                        .map_err(|e| SmtpError::Unreachable(e.into()))?;
                    stream.set_nodelay(true).map_err(|e| SmtpError::Unreachable(e.into()))?;
                    AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello_name).await?
                }
            };
            if let TlsMode::StartTls(tls) = &self.tls {
                connection.starttls(tls.clone(), &self.hello_name).await?;
            }
            if let Some(credentials) = &self.credentials {
                connection.auth(&[Mechanism::Plain, Mechanism::Login], credentials).await?;
            }
            Ok(connection)
        };
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(result) => result,
            Err(_) => Err(SmtpError::Unreachable(format!("no greeting within {:?}", self.connect_timeout).into())),
        }
    }

    /// Takes the connections idle for longer than the idle timeout out of the pool.
    fn take_stale(&self) -> Vec<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().expect("the pool lock is never poisoned");
        let (stale, fresh): (Vec<_>, Vec<_>) =
            idle.drain(..).partition(|connection| connection.since.elapsed() >= self.idle_timeout);
        *idle = fresh;
        stale.into_iter().map(|idle| idle.connection).collect()
    }
}

/// Every half idle timeout, says `QUIT` to the connections that were idle too long.
async fn reap_idle_connections(pool: Weak<Inner>) {
    loop {
        let period = match pool.upgrade() {
            Some(pool) => {
                for mut connection in pool.take_stale() {
                    let _ = tokio::time::timeout(Duration::from_secs(1), connection.quit()).await;
                }
                (pool.idle_timeout / 2).max(Duration::from_millis(100))
            }
            None => return,
        };
        tokio::time::sleep(period).await;
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
