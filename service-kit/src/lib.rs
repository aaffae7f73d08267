//! Service plumbing shared by every service, written once. What talks to RabbitMQ or to the
//! logger's RPC server is behind a feature of that name, so that a service links lapin or
//! tarpc only when it uses them.
//!
//! - [`settings`]: typed settings derived with serde, read once from an [`settings::Env`] (the
//!   process environment in `main`, a literal map in tests; nobody calls `set_var`); secrets
//!   as [`SecretString`].
//! - [`telemetry`]: JSON logs through `tracing` (pretty with `LOG_FORMAT=pretty`).
//! - [`deadline`]: the caller's deadline across a REST hop (`Request-Timeout`).
//! - [`http`]: the envelope renderer for errors, the JSON extractor limits, the 404 fallback.
//! - [`health`]: `GET /health` (liveness) and `GET /ready` (dependencies reachable).
//! - [`metrics`]: the process's Prometheus recorder, `GET /metrics`, the HTTP server metrics.
//! - [`server`]: binds a listener (port 0 in tests) and runs an actix-web app with request ids,
//!   health routes and graceful shutdown on SIGTERM/SIGINT.
//! - `amqp` (feature `amqp`): the event topology (exchange, shared queue, dead letters) and the
//!   confirming publisher.
//! - `logger_client` (feature `logger-rpc`): the shared, lazily connecting, self-reconnecting
//!   logger RPC client.
//! - [`retry`]: exponential, capped, logged retries with `backon`, bounded or without end.
//! - [`wiring`]: the local ports, addresses and names every default points at, defined once.
//! - `testing` (feature): per-test databases, unique names, the SMTP catcher's API.
#![forbid(unsafe_code)]

#[cfg(feature = "amqp")]
pub mod amqp;
pub mod deadline;
pub mod health;
pub mod http;
#[cfg(feature = "logger-rpc")]
pub mod logger_client;
pub mod metrics;
pub mod retry;
pub mod server;
pub mod settings;
pub mod telemetry;
pub mod trace;
pub mod wiring;

#[cfg(feature = "testing")]
pub mod testing;

pub use health::Readiness;
pub use settings::{Env, ExposeSecret, HttpSettings, SecretList, SecretString, SettingsError};
