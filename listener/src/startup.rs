//! Building and running the listener: the consuming loop and the `/health` + `/ready` server.

use actix_web::dev::Server;
use anyhow::Context;
use service_kit::Readiness;
use service_kit::amqp::Nodes;
use service_kit::amqp::consumer::{self, Consumer, StopHandle};
use service_kit::logger_client::LoggerRpc;
use service_kit::retry::RetryPolicy;
use service_kit::server::{HttpService, bind};

use crate::handler::Handler;
use crate::routes;
use crate::settings::Settings;

/// A built listener: the port bound, nothing connected yet.
pub struct Application {
    /// The real HTTP port (settings may ask for 0).
    port: u16,
    /// The health server; resolves when it stopped (SIGTERM/SIGINT, or [`StopHandle::stop`]).
    server: Server,
    /// The consuming loop, started by `run_until_stopped`.
    consumer: Consumer<Handler>,
}

impl Application {
    /// Binds the port. RabbitMQ and the logger need not be up: the consumer connects (and
    /// reconnects) with backoff once running, and `/ready` reports both until then.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::metrics::describe();
        let logger = LoggerRpc::new(settings.logger_rpc_addr.clone(), settings.logger_timeout);
        let handler = Handler::new(
            logger.clone(),
            settings.max_attempts,
            settings.max_in_flight_writes,
            RetryPolicy::forever(settings.retry_min, settings.retry_max),
        );
        let status = consumer::initial_status();
        let consumer = Consumer {
            nodes: Nodes::new(settings.rabbit_url.items()).map_err(|e| anyhow::anyhow!("RABBIT_URL: {e}"))?,
            connection_name: settings.connection_name.clone(),
            topology: settings.topology(),
            prefetch: settings.prefetch,
            reconnect: RetryPolicy::forever(settings.retry_min, settings.retry_max),
            handler,
            status: status.clone(),
            connected_metric: crate::metrics::CONNECTED,
        };

        let readiness = Readiness::new()
            .check("rabbitmq", move || {
                let status = status.clone();
                async move { status.check() }
            })
            .check("logger", move || {
                let logger = logger.clone();
                async move { logger.ping().await.map_err(|e| e.to_string()) }
            });
        let (listener, port) = bind(&settings.http)
            .with_context(|| format!("cannot bind the HTTP port {}:{}", settings.http.host, settings.http.port))?;
        let server = HttpService::new(&settings.http, readiness).workers(1).run(listener, (), routes::configure)?;
        tracing::info!(port, queue = %settings.queue, exchange = %settings.exchange, "listener built");
        Ok(Self { port, server, consumer })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that stops the listener once it runs.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle::of(&self.server)
    }

    /// Consumes and serves `/health` and `/ready` until SIGTERM/SIGINT (or [`StopHandle::stop`]):
    /// then stops taking deliveries, finishes those in hand (bounded), and closes the connection.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application { server, consumer, .. } = self;
        consumer.run_beside(server).await.context("the health server failed")?;
        tracing::info!("listener stopped");
        Ok(())
    }
}
