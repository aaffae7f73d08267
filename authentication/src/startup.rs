//! Building and running the service: pool, migrations, bcrypt, HTTP server.

use actix_web::dev::Server;
use anyhow::Context;
use service_kit::Readiness;
use service_kit::retry::{RetryPolicy, retry};
use service_kit::server::{HttpService, bind};

use crate::migrations::SEED_PASSWORD;
use crate::password::PasswordHasher;
use crate::routes;
use crate::settings::Settings;
use crate::state::AppState;
use crate::store::UserStore;
use crate::tokens::TokenSigner;

pub struct Application {
    /// The port the server really listens on (settings may ask for 0).
    port: u16,
    /// The running server; awaiting it serves until SIGTERM/SIGINT.
    server: Server,
}

impl Application {
    /// Binds the port, prepares bcrypt, and applies the migrations, retrying while Postgres is
    /// not reachable yet (about a minute, [`RetryPolicy::STARTUP`]): without its table the
    /// service cannot answer anything. After start-up a lost database only makes requests fail
    /// with 503 until it is back.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::metrics::describe();
        // First what fails for good, so that a taken port or a bad DSN does not wait a minute.
        let (listener, port) = bind(&settings.http)
            .with_context(|| format!("cannot listen on {}:{}", settings.http.host, settings.http.port))?;
        let store = UserStore::new(&settings.database)?;
        let tokens = TokenSigner::new(&settings.tokens)?;
        let hasher = PasswordHasher::new(settings.bcrypt_cost, settings.bcrypt_concurrency, settings.bcrypt_queue)
            .await
            .with_context(|| format!("BCRYPT_COST={} is not a usable bcrypt cost", settings.bcrypt_cost))?;
        let seed_hash = hasher.hash(SEED_PASSWORD.to_owned()).await?;

        let applied = retry("apply the database migrations", RetryPolicy::STARTUP, || async {
            store.migrate(&seed_hash).await.map_err(|error| service_kit::http::error_chain(&error))
        })
        .await
        .map_err(anyhow::Error::msg)
        .context("cannot apply the database migrations")?;
        tracing::info!(applied, "database schema is up to date");

        let readiness = Readiness::new().check("postgres", {
            let store = store.clone();
            move || {
                let store = store.clone();
                async move { store.ping().await.map_err(|error| service_kit::http::error_chain(&error)) }
            }
        });
        let state_kid = tokens.kid().to_owned();
        let server = HttpService::new(&settings.http, readiness).run(
            listener,
            AppState { store, hasher, tokens },
            routes::configure,
        )?;
        tracing::info!(port, kid = state_kid, "authentication service listening");
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
