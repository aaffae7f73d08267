//! The broker's four downstreams and what can go wrong with a hop to one of them.
//!
//! Every failure names the service. The status follows from the kind: a service that cannot
//! be reached or fails is a 502, one that does not answer in time a 504, one that says it is
//! overloaded or its own dependency is down (a 503) a 503, and one that refuses a request the
//! broker thought valid (a 4xx) passes its status and message through. A service whose circuit
//! is open ([`crate::breaker`]) is not called: a 503 with the time left before a trial.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::http::StatusCode;
use anyhow::Context;
use service_kit::Readiness;
use service_kit::amqp::{EventPublisher, PublishError, Topology};
use service_kit::logger_client::{LoggerRpc, RpcError};

use crate::breaker::{Breaker, Breakers, Status};
use crate::settings::Settings;

pub mod go_original;
mod rest;

pub use rest::{RestService, http_client};

/// The broker's clients, made once at start-up and shared by every worker.
#[derive(Debug, Clone)]
pub struct Downstreams {
    /// REST, `POST /authenticate`.
    pub auth: RestService,
    /// REST, `POST /send`.
    pub mailer: RestService,
    /// tarpc: one multiplexed connection, reconnected on demand.
    pub logger: LoggerRpc,
    /// AMQP with publisher confirms, over pooled channels.
    pub events: EventPublisher,
    /// The same, on the mail-job topology: where a mail goes while the mailer is down.
    pub mail_jobs: EventPublisher,
    /// One circuit breaker per downstream: every hop of `/handle` goes through its own.
    pub breakers: Breakers,
}

/// The name the broker's RabbitMQ connection shows in `rabbitmqctl list_connections`.
pub const AMQP_CONNECTION_NAME: &str = "broker";
/// The name of the broker's connection for mail jobs.
pub const AMQP_MAIL_CONNECTION_NAME: &str = "broker-mail";

impl Downstreams {
    /// Makes the clients; none connects before its first use, so the broker starts (and says
    /// "not ready") while its downstreams are still down.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let http = http_client().context("cannot build the HTTP client")?;
        let topology = Topology::new(&settings.exchange, &settings.queue).with_queue_type(settings.queue_type);
        let events = EventPublisher::with_nodes(settings.rabbit_url.items(), topology, settings.rabbit_timeout)
            .and_then(|publisher| publisher.with_connection_name(AMQP_CONNECTION_NAME))
            .context("cannot set up the RabbitMQ publisher")?;
        let mail_topology =
            Topology::mail(&settings.mail_exchange, &settings.mail_queue).with_queue_type(settings.queue_type);
        let mail_jobs = EventPublisher::with_nodes(settings.rabbit_url.items(), mail_topology, settings.rabbit_timeout)
            .and_then(|publisher| publisher.with_connection_name(AMQP_MAIL_CONNECTION_NAME))
            .context("cannot set up the RabbitMQ mail-job publisher")?;
        Ok(Self {
            auth: RestService::new(Service::Authentication, &settings.auth_url, settings.auth_timeout, http.clone()),
            mailer: RestService::new(Service::Mailer, &settings.mailer_url, settings.mailer_timeout, http),
            logger: LoggerRpc::new(settings.logger_rpc_addr.clone(), settings.logger_timeout),
            events,
            mail_jobs,
            breakers: Breakers::new(&settings.breaker),
        })
    }

    /// `/ready`: each downstream's state, shown without gating. An entry is `ok`, or what is
    /// wrong followed by its circuit's state (`circuit open, retry in 7 s`). A downstream that
    /// is down does not make the broker unready: every replica shares it, so a failing probe
    /// would take them all out of rotation and turn each degraded answer (a queued mail, a log
    /// via RabbitMQ, a fast 503 naming the service) into no answer at all. The probes go around
    /// the breakers: they neither count as calls nor wait for a circuit.
    pub fn readiness(&self) -> Readiness {
        let (auth, mailer, logger, events) =
            (self.auth.clone(), self.mailer.clone(), self.logger.clone(), self.events.clone());
        let breakers = &self.breakers;
        Readiness::new()
            .report(
                "authentication",
                with_circuit(&breakers.auth, move || {
                    let auth = auth.clone();
                    async move { auth.health().await }
                }),
            )
            .report(
                "logger",
                with_circuit(&breakers.logger, move || {
                    let logger = logger.clone();
                    async move { logger.ping().await.map_err(|e| DownstreamError::from(e).to_string()) }
                }),
            )
            .report(
                "mailer",
                with_circuit(&breakers.mailer, move || {
                    let mailer = mailer.clone();
                    async move { mailer.health().await }
                }),
            )
            .report(
                "rabbitmq",
                with_circuit(&breakers.rabbit, move || {
                    let events = events.clone();
                    async move { events.ping().await.map_err(|e| DownstreamError::from(e).to_string()) }
                }),
            )
    }
}

/// A readiness probe that also reports `breaker`'s state whenever it is not closed.
fn with_circuit<F, Fut>(
    breaker: &Breaker,
    probe: F,
) -> impl Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync + 'static
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let breaker = breaker.clone();
    move || {
        let (breaker, probe) = (breaker.clone(), probe());
        Box::pin(async move {
            let status = breaker.status();
            match (probe.await, status) {
                (Ok(()), Status::Closed) => Ok(()),
                (Ok(()), status) => Err(format!("answers, but {status}")),
                (Err(error), status) => Err(format!("{error} ({status})")),
            }
        })
    }
}

/// A downstream, as named in error messages and readiness reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Authentication,
    Logger,
    Mailer,
    RabbitMq,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Authentication => "authentication service",
            Service::Logger => "logger",
            Service::Mailer => "mailer",
            Service::RabbitMq => "RabbitMQ",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A hop that did not succeed. `Display` is the message the caller sees.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DownstreamError {
    /// Connecting failed or the connection broke: the service is down or unreachable.
    #[error("{service} is unreachable: {reason}")]
    Unreachable { service: Service, reason: String },
    /// No answer within the hop's timeout.
    #[error("{service} did not answer within {}ms", .timeout.as_millis())]
    Timeout { service: Service, timeout: Duration },
    /// The service refused the request (a 4xx); its own message, which names the problem.
    #[error("{message}")]
    Rejected { service: Service, status: StatusCode, message: String },
    /// The service answered 503: overloaded, or a dependency of its own is down. It is up, and
    /// the caller may try again shortly.
    #[error("{service} is unavailable: {message}")]
    Unavailable { service: Service, message: String },
    /// The service answered with a failure of its own, or with something unreadable.
    #[error("{service} failed: {reason}")]
    Failed { service: Service, reason: String },
    /// Not called: its circuit is open after repeated failures ([`crate::breaker`]).
    #[error("{service} unavailable: circuit open, retry in {} s", crate::breaker::whole_seconds(*.retry_after))]
    CircuitOpen { service: Service, retry_after: Duration },
}

impl DownstreamError {
    /// What the broker answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            DownstreamError::Unreachable { .. } | DownstreamError::Failed { .. } => StatusCode::BAD_GATEWAY,
            DownstreamError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            DownstreamError::Unavailable { .. } | DownstreamError::CircuitOpen { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            DownstreamError::Rejected { status, .. } => *status,
        }
    }

    /// What the caller should wait before trying again, when the broker knows better than 1 s.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DownstreamError::CircuitOpen { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether the service did not take the request, so that doing the work another way (through
    /// RabbitMQ) does not do it twice: unreachable, its circuit open, or a 503. Not a timeout nor
    /// a failure of its own, after which it may have done the work. (A connection that broke
    /// mid-call is unreachable too: the one ambiguous case, see `actions::log`.)
    pub fn not_taken(&self) -> bool {
        matches!(
            self,
            DownstreamError::Unreachable { .. }
                | DownstreamError::CircuitOpen { .. }
                | DownstreamError::Unavailable { .. }
        )
    }

    /// Whether this counts towards opening the service's circuit: it is down, hangs, or fails
    /// (a 5xx). Not a 4xx, which the service gave on purpose, nor a 503, which is a service
    /// that is up and shedding load and says when to come back (see [`crate::breaker`]).
    pub fn is_failure(&self) -> bool {
        match self {
            DownstreamError::Unreachable { .. } | DownstreamError::Timeout { .. } | DownstreamError::Failed { .. } => {
                true
            }
            DownstreamError::Rejected { .. }
            | DownstreamError::Unavailable { .. }
            | DownstreamError::CircuitOpen { .. } => false,
        }
    }
}

impl From<RpcError> for DownstreamError {
    fn from(error: RpcError) -> Self {
        use contract::log::LogError;
        let service = Service::Logger;
        match error {
            RpcError::Unreachable(reason) => DownstreamError::Unreachable { service, reason },
            RpcError::Timeout(timeout) => DownstreamError::Timeout { service, timeout },
            RpcError::Logger(error @ LogError::Invalid(_)) => {
                DownstreamError::Rejected { service, status: StatusCode::BAD_REQUEST, message: error.to_string() }
            }
            RpcError::Logger(error @ LogError::NotFound(_)) => {
                DownstreamError::Rejected { service, status: StatusCode::NOT_FOUND, message: error.to_string() }
            }
            RpcError::Logger(error @ LogError::Unavailable(_)) => {
                DownstreamError::Failed { service, reason: error.to_string() }
            }
        }
    }
}

impl From<PublishError> for DownstreamError {
    fn from(error: PublishError) -> Self {
        let service = Service::RabbitMq;
        match error {
            PublishError::Unreachable(reason) => DownstreamError::Unreachable { service, reason },
            PublishError::Timeout(timeout) => DownstreamError::Timeout { service, timeout },
            PublishError::Nacked => {
                DownstreamError::Failed { service, reason: "the event was refused (nack), nothing was stored".into() }
            }
            PublishError::Amqp(reason) => DownstreamError::Failed { service, reason },
        }
    }
}

/// The innermost cause of an error: the part that says what happened ("Connection refused"),
/// without the outer layers that repeat the URL.
pub(crate) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_names_the_service_and_maps_to_its_status() {
        let cases = [
            (
                DownstreamError::Unreachable { service: Service::Mailer, reason: "Connection refused".into() },
                StatusCode::BAD_GATEWAY,
                "mailer is unreachable: Connection refused",
            ),
            (
                DownstreamError::Timeout { service: Service::Authentication, timeout: Duration::from_millis(1500) },
                StatusCode::GATEWAY_TIMEOUT,
                "authentication service did not answer within 1500ms",
            ),
            (
                DownstreamError::Rejected {
                    service: Service::Mailer,
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    message: "invalid field `to`".into(),
                },
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid field `to`",
            ),
            (
                DownstreamError::Unavailable {
                    service: Service::Authentication,
                    message: "the authentication service is overloaded, try again shortly".into(),
                },
                StatusCode::SERVICE_UNAVAILABLE,
                "authentication service is unavailable: the authentication service is overloaded, try again shortly",
            ),
            (
                DownstreamError::Failed { service: Service::RabbitMq, reason: "the event was not confirmed".into() },
                StatusCode::BAD_GATEWAY,
                "RabbitMQ failed: the event was not confirmed",
            ),
        ];
        for (error, status, message) in cases {
            assert_eq!(error.status(), status, "{error:?}");
            assert_eq!(error.to_string(), message);
        }
    }
}
