//! Building the application from its settings, and running it.

use actix_web::dev::Server;
use anyhow::Context;
use service_kit::Readiness;
use service_kit::server::{HttpService, bind};

use crate::routes;
use crate::settings::Settings;
use crate::smtp::SmtpMailer;
use crate::state::AppState;
use crate::templates::Renderer;

/// The mailer's HTTP server, bound and ready to run.
pub struct Application {
    /// The port really bound (settings may ask for 0).
    port: u16,
    /// The actix-web server; runs when awaited.
    server: Server,
}

impl Application {
    /// Binds the port and builds the SMTP transport. Does not connect to the SMTP server: a
    /// server that is down shows on `/ready` and as 502 on `/send`, not as a failed start.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::metrics::describe();
        let default_sender = settings.default_sender().context("invalid default sender")?;
        let mailer = SmtpMailer::new(&settings.smtp).context("cannot configure the SMTP transport")?;
        let renderer = Renderer::new().context("cannot compile the mail templates")?;
        tracing::info!(smtp = ?settings.smtp, %default_sender, "mailer configured");

        let readiness = Readiness::new().check("smtp", {
            let mailer = mailer.clone();
            move || {
                let mailer = mailer.clone();
                async move { mailer.ping().await }
            }
        });
        let state = AppState { mailer, renderer, default_sender };
        let (listener, port) = bind(&settings.http).context("cannot bind the HTTP port")?;
        let server = HttpService::new(&settings.http, readiness).run(listener, state, routes::configure)?;
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
