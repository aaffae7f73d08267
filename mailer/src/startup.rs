//! Building the application from its settings, and running it: the HTTP server and, beside it,
//! the consumer of queued mail jobs.

use std::sync::Arc;

use actix_web::dev::Server;
use anyhow::Context;
use service_kit::Readiness;
use service_kit::amqp::Nodes;
use service_kit::amqp::consumer::{self, Consumer, StopHandle};
use service_kit::retry::RetryPolicy;
use service_kit::server::{HttpService, bind};

use crate::jobs::JobHandler;
use crate::routes;
use crate::settings::Settings;
use crate::smtp::SmtpMailer;
use crate::state::AppState;
use crate::templates::Renderer;

/// The mailer's HTTP server, bound and ready to run, and its job consumer, not connected yet.
pub struct Application {
    /// The port really bound (settings may ask for 0).
    port: u16,
    /// The actix-web server; runs when awaited.
    server: Server,
    /// The loop that takes mail jobs off RabbitMQ, started by `run_until_stopped`.
    consumer: Consumer<JobHandler>,
}

impl Application {
    /// Binds the port and builds the SMTP transport. Connects to neither the SMTP server nor
    /// RabbitMQ: a server that is down shows on `/ready` (and as 502 on `/send`), not as a
    /// failed start; the consumer connects with backoff once running.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::metrics::describe();
        let default_sender = settings.default_sender().context("invalid default sender")?;
        let mailer = SmtpMailer::new(&settings.smtp).context("cannot configure the SMTP transport")?;
        let renderer = Arc::new(Renderer::new().context("cannot compile the mail templates")?);
        tracing::info!(smtp = ?settings.smtp, queue = ?settings.queue, %default_sender, "mailer configured");

        let state = AppState { mailer: mailer.clone(), renderer, default_sender };
        let queue = &settings.queue;
        let backoff = RetryPolicy::forever(queue.retry_min, queue.retry_max);
        let status = consumer::initial_status();
        let consumer = Consumer {
            nodes: Nodes::new(queue.rabbit_url.items()).map_err(|e| anyhow::anyhow!("RABBIT_URL: {e}"))?,
            connection_name: queue.connection_name.clone(),
            topology: queue.topology(),
            prefetch: queue.prefetch,
            reconnect: backoff,
            handler: JobHandler::new(state.clone(), backoff),
            status: status.clone(),
            connected_metric: crate::metrics::JOBS_CONNECTED,
        };

        let readiness = Readiness::new()
            .check("smtp", move || {
                let mailer = mailer.clone();
                async move { mailer.ping().await }
            })
            // Shown, not gating: a RabbitMQ outage stops only the queued mail, and taking the
            // mailer out of rotation for it would stop the direct sends too.
            .report("rabbitmq", move || {
                let status = status.clone();
                async move { status.check() }
            });
        let (listener, port) = bind(&settings.http).context("cannot bind the HTTP port")?;
        let server = HttpService::new(&settings.http, readiness).run(listener, state, routes::configure)?;
        Ok(Self { port, server, consumer })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that stops the mailer once it runs.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle::of(&self.server)
    }

    /// Serves and consumes until SIGTERM/SIGINT (or [`StopHandle::stop`]): then drains in-flight
    /// requests, stops taking jobs, finishes those in hand (bounded) and closes the connection.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application { server, consumer, .. } = self;
        consumer.run_beside(server).await.context("the HTTP server failed")
    }
}
