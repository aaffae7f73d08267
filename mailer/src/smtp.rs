//! The SMTP side: one lettre transport with a connection pool, built once and shared.
//!
//! lettre's pool keeps up to `pool_size` idle connections but does not cap how many are open
//! at once; a semaphore of the same size does, so a burst of requests reuses connections
//! instead of opening (and then closing) one per request. Connections are opened lazily: the
//! service starts while the SMTP server is down, reports it on `/ready`, answers 502 to sends,
//! and sends again once the server is back (a pooled connection that died is tested with
//! `NOOP` and replaced).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Semaphore;

use crate::settings::{Encryption, SmtpSettings};

/// Sends mails through the configured SMTP server. Cheap to clone.
#[derive(Clone)]
pub struct SmtpMailer {
    /// lettre's transport; clones share its pool.
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// One permit per connection the pool may have open.
    permits: Arc<Semaphore>,
    /// Bounds a whole send, waiting for a permit included.
    send_timeout: Duration,
    /// Bounds the readiness check.
    connect_timeout: Duration,
    /// `host:port`, for logs.
    server: String,
}

/// Why a mail was not sent. `Display` is safe to show a caller; `Debug` has the cause.
#[derive(thiserror::Error)]
pub enum SmtpError {
    /// Connection refused, reset, TLS or protocol failure: the server is down or not speaking SMTP.
    #[error("cannot reach the mail server; the mail was not sent")]
    Unreachable(#[source] lettre::transport::smtp::Error),
    /// The server answered with a 4xx or 5xx reply.
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
            None => SmtpError::Unreachable(error),
        }
    }
}

impl SmtpMailer {
    /// Builds the transport and its pool; connects nothing yet. Needs a tokio runtime (the pool
    /// spawns its idle-connection reaper).
    pub fn new(settings: &SmtpSettings) -> Result<Self, lettre::transport::smtp::Error> {
        let tls = match settings.encryption {
            Encryption::None => Tls::None,
            Encryption::StartTls => Tls::Required(TlsParameters::new(settings.host.clone())?),
            Encryption::Tls => Tls::Wrapper(TlsParameters::new(settings.host.clone())?),
        };
        let hello_name = match settings.domain.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => ClientId::Ipv4(ip),
            Ok(IpAddr::V6(ip)) => ClientId::Ipv6(ip),
            Err(_) => ClientId::Domain(settings.domain.clone()),
        };
        let pool = PoolConfig::new().max_size(settings.pool_size).idle_timeout(settings.pool_idle_timeout);
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.as_str())
            .port(settings.port)
            .tls(tls)
            .hello_name(hello_name)
            .timeout(Some(settings.connect_timeout))
            .pool_config(pool);
        if !settings.username.is_empty() {
            builder = builder.credentials(Credentials::new(settings.username.clone(), settings.password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            permits: Arc::new(Semaphore::new(settings.pool_size as usize)),
            send_timeout: settings.send_timeout,
            connect_timeout: settings.connect_timeout,
            server: format!("{}:{}", settings.host, settings.port),
        })
    }

    /// Sends `message`, giving up after the send timeout.
    #[tracing::instrument(name = "smtp send", skip_all, fields(server = %self.server))]
    pub async fn send(&self, message: Message) -> Result<(), SmtpError> {
        let send = async {
            let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
            self.transport.send(message).await
        };
        match tokio::time::timeout(self.send_timeout, send).await {
            Ok(Ok(response)) => {
                tracing::debug!(code = %response.code(), "mail accepted");
                Ok(())
            }
            Ok(Err(error)) => Err(error.into()),
            Err(_) => Err(SmtpError::Timeout(self.send_timeout)),
        }
    }

    /// Opens (or reuses) a connection and sends `NOOP`, within the connect timeout.
    pub async fn ping(&self) -> Result<(), String> {
        match tokio::time::timeout(self.connect_timeout, self.transport.test_connection()).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(format!("{} did not answer NOOP", self.server)),
            Ok(Err(error)) => Err(format!("{}: {error}", self.server)),
            Err(_) => Err(format!("{}: no answer within {:?}", self.server, self.connect_timeout)),
        }
    }
}
