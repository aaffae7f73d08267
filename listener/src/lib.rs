//! The listener: takes log events off RabbitMQ's shared queue and stores each exactly once
//! through the logger.
//!
//! - [`settings`]: `PORT` (8086), `RABBIT_URL`, `LOGGER_RPC_ADDR`, `QUEUE_NAME`, `EXCHANGE`,
//!   `PREFETCH`, `MAX_ATTEMPTS`, timeouts and backoffs.
//! - `service_kit::amqp::consumer`: the loop (shared with the mailer) that connects with
//!   backoff, declares the topology, consumes with manual acks within a prefetch window, and
//!   reconnects after any loss of the connection.
//! - [`handler`]: one delivery: parse, check, store through the shared logger client, then ack;
//!   malformed messages go to the dead-letter queue at once, failing writes after a bounded
//!   number of attempts, and an unreachable logger is waited for rather than given up on.
//! - [`go_original`]: events in the Go original's format (`{"name","data"}`, `text/plain`, the
//!   level in the routing key), accepted beside ours; its id rule and why `auth` events are kept.
//! - [`metrics`]: deliveries received, stored, dead-lettered, redelivered, held, in flight, and
//!   whether the consumer is connected, for `GET /metrics`.
//! - [`routes`]: the HTTP routes of its own (none yet), registered as every service does.
//! - [`startup`]: [`Application`] runs the consumer beside a `/health` and `/ready` server.
//!
//! Replicas share one queue and compete for its messages; an event redelivered (after a lost
//! ack or a crash) is stored once, because the logger stores an event id at most once.
#![forbid(unsafe_code)]

pub mod go_original;
pub mod handler;
pub mod metrics;
pub mod routes;
pub mod settings;
pub mod startup;

pub use service_kit::amqp::consumer::StopHandle;
pub use settings::Settings;
pub use startup::Application;
