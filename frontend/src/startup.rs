//! Binding and running the frontend.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::web;
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
        let server = run(listener, Page::render(&settings))?;
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

fn run(listener: TcpListener, page: Page) -> std::io::Result<Server> {
    let page = web::Data::new(page);
    // Ready as soon as it listens: the page works (and says so) even while the broker is down.
    HttpService::new(Readiness::new()).run(listener, move |cfg| {
        cfg.app_data(page.clone())
            .route("/", web::get().to(routes::index))
            .route("/index.html", web::get().to(routes::index))
            .route("/static/{file}", web::get().to(routes::asset));
    })
}
