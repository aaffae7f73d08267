//! Building and running the broker: clients, routes, the bound listener.

use actix_web::dev::Server;
use anyhow::Context;
use service_kit::server::{HttpService, bind};

use crate::Settings;
use crate::downstream::Downstreams;
use crate::limits::Limits;
use crate::protect::TokenVerifier;
use crate::routes::{self, openapi};
use crate::state::AppState;

/// A built broker: bound (so the port is known) but not yet serving.
pub struct Application {
    /// The port really bound (the one asked for, or a free one for port 0).
    port: u16,
    /// The actix-web server; serves when awaited.
    server: Server,
}

impl Application {
    /// Binds and builds; nothing connects to a downstream until a request needs it.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::metrics::describe();
        let downstreams = Downstreams::new(&settings)?;
        let readiness = downstreams.readiness();
        let tokens = TokenVerifier::new(settings.protect.clone(), &settings.auth_url, downstreams.auth.http());
        let openapi_json = openapi::render_json().context("cannot render the OpenAPI document")?;
        let (listener, port) = bind(&settings.http)
            .with_context(|| format!("cannot bind {}:{}", settings.http.host, settings.http.port))?;
        let server = HttpService::new(&settings.http, readiness)
            .cors(settings.cors_allowed_origins.clone())
            .run(
                listener,
                AppState { downstreams, tokens, limits: Limits::new(&settings.limits), openapi_json },
                routes::configure,
            )
            .context("cannot start the HTTP server")?;
        tracing::info!(port, auth_url = %settings.auth_url, logger = %settings.logger_rpc_addr,
            mailer_url = %settings.mailer_url, exchange = %settings.exchange,
            protected = ?settings.protect.protected_actions, rate_limits = settings.limits.enabled, "broker listening");
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await.context("the HTTP server failed")
    }
}
