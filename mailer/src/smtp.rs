//! The SMTP side: a pool of lettre SMTP connections, shared by every request.
//!
//! Why not lettre's own pooled `AsyncSmtpTransport`: lettre 0.11.23 never sets `TCP_NODELAY`,
//! and it writes a message body and its `\r\n.\r\n` terminator in two writes, so Nagle's
//! algorithm holds the terminator until the server's delayed ACK (40 ms on Linux): every mail
//! costs 40 ms of waiting, whatever the server (fixed upstream in lettre PR #1159, unreleased).
//! Its pool also puts a connection back after a cancelled (timed out) send, half-way through a
//! command, and it does not cap how many connections are open at once. So the pool here is
//! deadpool's, and this module only says how to open, check and give back a connection:
//!
//! - `Connector::create` opens the TCP connection with `TCP_NODELAY` and hands it to lettre's
//!   `AsyncSmtpConnection` (greeting, EHLO, STARTTLS, AUTH, the SMTP dialogue); deadpool bounds
//!   it with the connect timeout;
//! - the pool holds at most `pool_size` connections; requests beyond it wait (bounded by the
//!   send timeout, which covers the whole send);
//! - `Connector::recycle` tests an idle connection with `NOOP` before reuse (bounded by the
//!   connect timeout); a dead one is discarded and replaced, so the service recovers by itself
//!   when the SMTP server comes back;
//! - a connection goes back to the pool only after a send that completed; a failed or timed-out
//!   send takes it out of the pool (`Object::take`) and drops it;
//! - a task that ends with the pool closes connections not handed out for longer than
//!   `pool_idle_timeout` (`Pool::retain`).
//!
//! Nothing is connected at start-up: the service starts while the SMTP server is down, reports
//! it on `/ready` and answers 502 to sends.

use std::net::IpAddr;
use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{Manager, Metrics, Object, Pool, PoolError, QueueMode, RecycleError, RecycleResult};
use deadpool::managed::{TimeoutType, WeakPool};
use lettre::Message;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use service_kit::ExposeSecret;
use service_kit::metrics::{counter, gauge, histogram};
use tokio::net::TcpStream;

use crate::metrics;
use crate::settings::{Encryption, SmtpSettings};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Sends mails through the configured SMTP server. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct SmtpMailer {
    pool: Pool<Connector>,
    /// Bounds a whole send, waiting for a connection included.
    send_timeout: Duration,
}

/// Opens and checks the pool's connections.
struct Connector {
    host: String,
    port: u16,
    /// How the connection is secured, with the TLS parameters built once.
    tls: TlsMode,
    /// The `EHLO` name.
    hello_name: ClientId,
    /// `AUTH` with these when set.
    credentials: Option<Credentials>,
    /// Bounds TCP connect, TLS, greeting, EHLO and AUTH (deadpool's create timeout), and `NOOP`.
    connect_timeout: Duration,
    /// `host:port`, for logs and readiness reports.
    server: String,
}

enum TlsMode {
    None,
    StartTls(TlsParameters),
    Implicit(TlsParameters),
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
        /// Whether the refusal answered the mail itself (MAIL, RCPT, DATA), rather than opening
        /// the session (greeting, EHLO, STARTTLS, AUTH): only the former is about this mail.
        about_the_mail: bool,
        /// lettre's error, boxed: lettre offers no way to make one, and the tests of the failure
        /// policy need refusals of every code.
        #[source]
        source: BoxError,
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
            Some(code) => SmtpError::Refused { code: code.to_string(), about_the_mail: false, source: error.into() },
            None => SmtpError::Unreachable(error.into()),
        }
    }
}

impl SmtpMailer {
    /// Prepares the pool; connects nothing yet. Must run inside a tokio runtime (it spawns the
    /// idle-connection closer, which ends with the pool).
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
            .map(|username| Credentials::new(username.clone(), settings.password.expose_secret().to_owned()));
        let connector = Connector {
            host: settings.host.clone(),
            port: settings.port,
            tls,
            hello_name,
            credentials,
            connect_timeout: settings.connect_timeout,
            server: format!("{}:{}", settings.host, settings.port),
        };
        let pool = Pool::builder(connector)
            .max_size(settings.pool_size as usize)
            // The most recently used first, so that connections beyond the load go idle and close.
            .queue_mode(QueueMode::Lifo)
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .expect("a pool with a runtime builds");
        tokio::spawn(close_idle_connections(pool.weak(), settings.pool_idle_timeout));
        Ok(Self { pool, send_timeout: settings.send_timeout })
    }

    /// Sends `message`, giving up after the send timeout.
    #[tracing::instrument(name = "smtp send", skip_all, fields(server = %self.pool.manager().server))]
    pub async fn send(&self, message: Message) -> Result<(), SmtpError> {
        let envelope = message.envelope().clone();
        let bytes = message.formatted();
        let started = std::time::Instant::now();
        let sent = tokio::time::timeout(self.send_timeout, self.send_now(&envelope, &bytes))
            .await
            .unwrap_or(Err(SmtpError::Timeout(self.send_timeout)));
        self.record(&sent, started.elapsed());
        sent
    }

    /// The send's outcome and time, and the pool as it is now.
    fn record(&self, sent: &Result<(), SmtpError>, took: Duration) {
        let outcome = match sent {
            Ok(()) => "sent",
            Err(SmtpError::Refused { .. }) => "refused",
            Err(SmtpError::Unreachable(_)) => "unreachable",
            Err(SmtpError::Timeout(_)) => "timeout",
        };
        counter!(metrics::MAILS, "outcome" => outcome).increment(1);
        histogram!(metrics::SMTP_DURATION, "outcome" => outcome).record(took);
        let status = self.pool.status();
        gauge!(metrics::POOL_CONNECTIONS).set(status.size as f64);
        gauge!(metrics::POOL_IN_USE).set(status.size.saturating_sub(status.available) as f64);
    }

    async fn send_now(&self, envelope: &Envelope, bytes: &[u8]) -> Result<(), SmtpError> {
        let mut lease = Lease(Some(self.pool.get().await.map_err(|e| self.pool.manager().pool_error(e))?));
        let response =
            lease.connection().send(envelope, bytes).await.map_err(|error| match SmtpError::from(error) {
                SmtpError::Refused { code, source, .. } => SmtpError::Refused { code, about_the_mail: true, source },
                other => other,
            })?;
        tracing::debug!(code = %response.code(), "mail accepted");
        lease.give_back();
        Ok(())
    }

    /// Gets a working connection (tested idle one or new) within the connect timeout.
    pub async fn ping(&self) -> Result<(), String> {
        let connector = self.pool.manager();
        match tokio::time::timeout(connector.connect_timeout, self.pool.get()).await {
            Ok(Ok(_connection)) => Ok(()),
            Ok(Err(error)) => {
                Err(format!("{}: {}", connector.server, service_kit::http::error_chain(&connector.pool_error(error))))
            }
            Err(_) => Err(format!("{}: no answer within {:?}", connector.server, connector.connect_timeout)),
        }
    }
}

/// A pooled connection in use. Dropped, it leaves the pool and closes: only `give_back`, after a
/// completed send, returns it (a failed or timed-out send may have stopped half-way through a command).
struct Lease(Option<Object<Connector>>);

impl Lease {
    fn connection(&mut self) -> &mut AsyncSmtpConnection {
        self.0.as_mut().expect("a lease holds its connection until dropped")
    }

    fn give_back(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(connection) = self.0.take() {
            drop(Object::take(connection));
        }
    }
}

impl Manager for Connector {
    type Type = AsyncSmtpConnection;
    type Error = SmtpError;

    /// TCP (with `TCP_NODELAY`), TLS as configured, greeting, EHLO, AUTH.
    async fn create(&self) -> Result<AsyncSmtpConnection, SmtpError> {
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
    }

    /// An idle connection is reused only if it still answers `NOOP`; otherwise deadpool drops it.
    async fn recycle(&self, connection: &mut AsyncSmtpConnection, _: &Metrics) -> RecycleResult<SmtpError> {
        if connection.test_connected().await {
            return Ok(());
        }
        tracing::debug!(server = %self.server, "dropping a dead pooled connection");
        Err(RecycleError::message("no answer to NOOP"))
    }
}

impl Connector {
    fn pool_error(&self, error: PoolError<SmtpError>) -> SmtpError {
        match error {
            PoolError::Backend(error) => error,
            PoolError::Timeout(TimeoutType::Create) => {
                SmtpError::Unreachable(format!("no greeting within {:?}", self.connect_timeout).into())
            }
            other => SmtpError::Unreachable(other.into()),
        }
    }
}

/// Every half idle timeout, says `QUIT` to the connections not handed out for that long.
async fn close_idle_connections(pool: WeakPool<Connector>, idle_timeout: Duration) {
    let period = (idle_timeout / 2).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else { return };
        let stale = pool.retain(|_, metrics| metrics.last_used() < idle_timeout).removed;
        drop(pool);
        for mut connection in stale {
            let _ = tokio::time::timeout(Duration::from_secs(1), connection.quit()).await;
        }
    }
}
