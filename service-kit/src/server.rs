//! Binding and running a service's actix-web server.
//!
//! `bind` takes the settings and returns the listener and the real port, so a test can ask for
//! port 0. `HttpService::run` adds what every service has: request ids and spans
//! (tracing-actix-web), the JSON limits, `/health` and `/ready`, a JSON 404, optional CORS, the
//! `Host` allow-list (`ALLOWED_HOSTS`), security headers and the envelope on every refusal,
//! `GET /metrics` and the HTTP server metrics ([`crate::metrics`]), and the bounds on reading a
//! request (`BODY_TIMEOUT_MS`): actix's client request timeout on the
//! header section, [`http::bounded_body`] on the body.
//! Every service registers its own routes the same way: `run(listener, state, routes::configure)`,
//! where `state` is what its handlers share and `routes::configure(cfg, state)` adds it and the
//! routes.
//! actix-web stops gracefully on SIGTERM/SIGINT: it stops accepting, then drains in-flight
//! requests for up to [`SHUTDOWN_TIMEOUT_SECS`].

use std::net::TcpListener;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::middleware::{Condition, DefaultHeaders, from_fn};
use actix_web::{App, HttpServer, http::header, web};
use tracing_actix_web::TracingLogger;

use crate::health::{self, Readiness};
use crate::settings::HttpSettings;
use crate::{http, telemetry};

/// How long in-flight requests may take to finish after a shutdown signal.
pub const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

/// How long a connection that is being closed (after a 408, say) waits for the client to read
/// the answer and hang up before it is dropped: actix's default, made explicit.
pub const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Binds the service's address; returns the listener and the port it really got.
pub fn bind(settings: &HttpSettings) -> std::io::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind((settings.host.as_str(), settings.port))?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// What a service's HTTP server has besides its own routes.
#[derive(Clone)]
pub struct HttpService {
    readiness: Readiness,
    cors_allowed_origins: Vec<String>,
    workers: Option<usize>,
    body_timeout: Duration,
    allowed_hosts: http::AllowedHosts,
    /// Whether requests are measured ([`crate::metrics::record_http`]); `/metrics` is served
    /// either way. Off only to measure what measuring costs (`project/bench/run.sh --cost`).
    http_metrics: bool,
}

impl HttpService {
    /// A server with the bounds of `settings` (`bind` took its address) and these readiness
    /// checks.
    pub fn new(settings: &HttpSettings, readiness: Readiness) -> Self {
        Self {
            readiness,
            cors_allowed_origins: Vec::new(),
            workers: None,
            body_timeout: settings.body_timeout,
            allowed_hosts: http::AllowedHosts::new(&settings.allowed_hosts),
            http_metrics: settings.http_metrics,
        }
    }

    /// Allows browser calls from these origins (none by default).
    pub fn cors(mut self, allowed_origins: Vec<String>) -> Self {
        self.cors_allowed_origins = allowed_origins;
        self
    }

    /// Without the HTTP server metrics middleware (on by default).
    pub fn without_http_metrics(mut self) -> Self {
        self.http_metrics = false;
        self
    }

    /// Worker threads (default: one per core).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Starts serving on `listener`; the returned server runs when awaited or spawned. `state`
    /// is wrapped in `web::Data` once and handed to `configure` (the service's
    /// `routes::configure`) for every worker, so all workers share one state.
    pub fn run<S>(
        self,
        listener: TcpListener,
        state: S,
        configure: fn(&mut web::ServiceConfig, web::Data<S>),
    ) -> std::io::Result<Server>
    where
        S: Send + Sync + 'static,
    {
        let state = web::Data::new(state);
        let health = health::routes(self.readiness);
        let origins = self.cors_allowed_origins;
        let body_timeout = http::BodyTimeout(self.body_timeout);
        let allowed_hosts = self.allowed_hosts;
        let http_metrics = self.http_metrics;
        // Installed before the first request, so that nothing recorded is lost.
        crate::metrics::handle();
        let mut server = HttpServer::new(move || {
            let cors = origins
                .iter()
                .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
                .allowed_methods(["GET", "POST", "OPTIONS"])
                .allowed_headers([
                    header::CONTENT_TYPE,
                    header::ACCEPT,
                    header::AUTHORIZATION,
                    header::HeaderName::from_static(crate::trace::TRACEPARENT),
                ])
                // A page may read what names its request's trace and hops.
                .expose_headers([
                    header::HeaderName::from_static(crate::trace::TRACERESPONSE),
                    header::HeaderName::from_static(http::SERVER_TIMING),
                ])
                .max_age(3600);
            // The same origins see the answers' timings (devtools, `PerformanceResourceTiming`).
            let timing_allow_origin = DefaultHeaders::new().add((http::TIMING_ALLOW_ORIGIN, origins.join(", ")));
            // Innermost first: the 408 of a stalled body gets CORS headers and a span too; a
            // foreign host is refused before CORS looks at the origin; every refusal, CORS's
            // too, is logged, then put in the envelope; every answer gets the security headers;
            // every answer is measured with the status the client gets; an answer that got as far
            // as the root span names its trace.
            App::new()
                .wrap(from_fn(http::bounded_body))
                .wrap(Condition::new(!origins.is_empty(), cors))
                .wrap(Condition::new(!origins.is_empty(), timing_allow_origin))
                .wrap(from_fn(http::allowed_host))
                .wrap(from_fn(http::trace_response))
                .wrap(TracingLogger::<telemetry::BoundedRootSpan>::new())
                .wrap(from_fn(http::envelope_refusals))
                .wrap(from_fn(http::security_headers))
                .wrap(Condition::new(http_metrics, from_fn(crate::metrics::record_http)))
                .app_data(body_timeout)
                .app_data(allowed_hosts.clone())
                .app_data(http::json_config())
                .configure(health.clone())
                .route(contract::paths::METRICS, web::get().to(crate::metrics::render))
                .configure(|cfg| configure(cfg, state.clone()))
                .default_service(web::to(http::not_found))
        })
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        // A header section that stalls gets actix's bare 408 and the connection is closed.
        .client_request_timeout(self.body_timeout)
        .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
        // A client that closes its side is gone: actix then drops the handler's future (a queued
        // login leaves the queue, the broker's outbound request is dropped with its connection).
        // With half-closed connections allowed (actix's default) it runs on until it answers.
        .h1_allow_half_closed(false)
        .listen(listener)?;
        if let Some(workers) = self.workers {
            server = server.workers(workers);
        }
        Ok(server.run())
    }
}
