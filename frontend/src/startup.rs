//! Binding and running the frontend.

use actix_web::dev::Server;
use service_kit::Readiness;
use service_kit::server::{HttpService, bind};

use crate::page::Page;
use crate::routes;
use crate::settings::Settings;

pub struct Application {
    /// The port really bound (settings may ask for 0).
    port: u16,
    /// The running server; awaited by `run_until_stopped`.
    server: Server,
}

impl Application {
    /// Renders the page and binds; nothing here can hang, the frontend has no dependency.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let (listener, port) = bind(&settings.http)?;
        // Ready as soon as it listens: the page works (and says so) even while the broker is down.
        let server = HttpService::new(&settings.http, Readiness::new()).run(
            listener,
            Page::render(&settings),
            routes::configure,
        )?;
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await?;
        Ok(())
    }
}
