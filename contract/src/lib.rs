//! Wire types shared by both sides of every hop, defined once.
//!
//! - [`envelope`]: the `{"error", "message", "data"?}` body every HTTP endpoint answers with.
//! - [`handle`]: the broker's `POST /handle` request, a tagged enum of actions.
//! - [`auth`]: credentials, users and registration for the authentication service.
//! - [`log`]: log entries and the logger's error type.
//! - `rpc` (feature `rpc`): the logger's `#[tarpc::service]` trait, so that only the crates
//!   that speak it link tarpc.
//! - [`paths`]: every service's REST paths, registered by the service and called by its clients.
//! - [`event`]: the AMQP event published to the `logs_topic` exchange and its routing keys.
//! - [`mail`]: the mailer's `POST /send` body, and the mail job queued on RabbitMQ.
//! - [`token`]: the access token's claims and the login answer that carries it.
//! - `go_original` (feature `go-original-fixtures`): the Go original's exact bytes at every
//!   shared seam, recorded once in `fixtures/go-micro/`, for tests.
//! - [`validate`]: the field rules as types that parse on deserialisation, and
//!   [`validate::from_value`], which names a refused field by its path. The broker (at the
//!   edge) and the services read the same bodies through the same types, so they refuse the
//!   same inputs identically.
//!
//! Types that travel over tarpc are serialised as MessagePack with structs as maps
//! (`service_kit::logger_client::MessagePack`); keep them plain: no `flatten`, no internal or
//! untagged enums, which need a self-describing reader that buffers (and are slow or lossy there).
#![forbid(unsafe_code)]

pub mod auth;
pub mod envelope;
pub mod event;
#[cfg(feature = "go-original-fixtures")]
pub mod go_original;
pub mod handle;
pub mod log;
pub mod mail;
pub mod paths;
#[cfg(feature = "rpc")]
pub mod rpc;
pub mod token;
pub mod validate;

pub use envelope::Envelope;
pub use validate::ValidationError;
