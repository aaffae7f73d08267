//! The broker: the one entry point of the system.
//!
//! A browser or `curl` posts `{"action": ...}` to `POST /handle`. [`routes::handle`] reads the
//! body (at most 1 MiB, JSON only), parses it into `contract::handle::HandleRequest` (which
//! validates every field), and dispatches with an exhaustive `match` to one function per
//! action in [`routes::handle::actions`]. Each action makes one hop through a client in
//! [`downstream`]: REST to authentication and the mailer (one pooled `reqwest` client), tarpc
//! to the logger (the shared `service_kit::logger_client::LoggerRpc`), AMQP to RabbitMQ (the
//! shared confirming `service_kit::amqp::EventPublisher`). Every hop has its own timeout
//! ([`settings`]) and its failures become a 502 or 504 naming the service
//! ([`downstream::DownstreamError`]). [`startup`] wires it together; `GET /openapi.json`
//! ([`routes::openapi`]) describes the API from the same contract types. The handlers share one
//! [`state::AppState`]. [`protect`] checks the bearer token of the actions that need one;
//! [`limits`] refuses, with 429, a client over its rate and a login after too many failures.
//! [`breaker`] stops calling a downstream that keeps failing and answers 503 at once instead.
//! [`metrics`] names what the broker records for Prometheus (`GET /metrics`); [`timing`] names
//! each hop of a request and its duration in the answer's `Server-Timing`.
#![forbid(unsafe_code)]

pub mod breaker;
pub mod downstream;
pub mod limits;
pub mod metrics;
pub mod protect;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod timing;

pub use downstream::Downstreams;
pub use settings::Settings;
pub use startup::Application;
