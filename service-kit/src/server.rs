//! Binding and running a service's actix-web server.
//!
//! `bind` takes the settings and returns the listener and the real port, so a test can ask for
//! port 0. `HttpService::run` adds what every service has: request ids and spans
//! (tracing-actix-web), the JSON limits, `/health` and `/ready`, a JSON 404, optional CORS.
//! Every service registers its own routes the same way: `run(listener, state, routes::configure)`,
//! where `state` is what its handlers share and `routes::configure(cfg, state)` adds it and the
//! routes.
//! actix-web stops gracefully on SIGTERM/SIGINT: it stops accepting, then drains in-flight
//! requests for up to [`SHUTDOWN_TIMEOUT_SECS`].

use std::net::TcpListener;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::middleware::Condition;
use actix_web::{App, HttpServer, http::header, web};
use tracing_actix_web::TracingLogger;

use crate::health::{self, Readiness};
use crate::http;
use crate::settings::HttpSettings;

/// How long in-flight requests may take to finish after a shutdown signal.
pub const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

/// Binds the service's address; returns the listener and the port it really got.
pub fn bind(settings: &HttpSettings) -> std::io::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind((settings.host.as_str(), settings.port))?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// What a service's HTTP server has besides its own routes.
#[derive(Clone, Default)]
pub struct HttpService {
    readiness: Readiness,
    cors_allowed_origins: Vec<String>,
    workers: Option<usize>,
}

impl HttpService {
    pub fn new(readiness: Readiness) -> Self {
        Self { readiness, ..Self::default() }
    }

    /// Allows browser calls from these origins (none by default).
    pub fn cors(mut self, allowed_origins: Vec<String>) -> Self {
        self.cors_allowed_origins = allowed_origins;
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
        let mut server = HttpServer::new(move || {
            let cors = origins
                .iter()
                .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
                .allowed_methods(["GET", "POST", "OPTIONS"])
                .allowed_headers([header::CONTENT_TYPE, header::ACCEPT])
                .max_age(3600);
            App::new()
                .wrap(Condition::new(!origins.is_empty(), cors))
                .wrap(TracingLogger::default())
                .app_data(http::json_config())
                .configure(health.clone())
                .configure(|cfg| configure(cfg, state.clone()))
                .default_service(web::to(http::not_found))
        })
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .listen(listener)?;
        if let Some(workers) = self.workers {
            server = server.workers(workers);
        }
        Ok(server.run())
    }
}
