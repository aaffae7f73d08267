//! The mail service: `POST /send {"from"?, "to", "subject", "message"}` renders a
//! `multipart/alternative` mail (plain text + HTML with inlined CSS) and sends it over SMTP.
//!
//! - [`settings`]: `MAIL_*` and `FROM_*`, parsed once.
//! - [`domain`]: parse-don't-validate types; a [`domain::NewMail`] is safe to send (addresses
//!   lettre accepts, a one-line subject, a bounded message).
//! - [`templates`]: the templates in `mailer/templates/`, compiled in, HTML autoescaped and its
//!   CSS inlined.
//! - [`smtp`]: one pooled lettre transport with connect and send timeouts.
//! - [`metrics`]: mails by outcome, SMTP send time, the pool's connections, for `GET /metrics`.
//! - [`state`]: what the handlers share (the SMTP transport, the templates, the default sender).
//! - [`routes`]: the `/send` handler and its error-to-status mapping.
//! - [`jobs`]: the mail jobs the broker queued on RabbitMQ while the mailer was down: sent
//!   through the same pool, acked after SMTP accepted them, retried through an SMTP outage,
//!   dead-lettered when refused for good.
//! - [`startup`]: [`Application`], binding and running the HTTP server beside the job consumer.
#![forbid(unsafe_code)]

pub mod domain;
pub mod jobs;
pub mod metrics;
pub mod routes;
pub mod settings;
pub mod smtp;
pub mod startup;
pub mod state;
pub mod templates;

pub use service_kit::amqp::consumer::StopHandle;
pub use settings::Settings;
pub use startup::Application;
