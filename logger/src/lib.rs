//! The logger service: stores log entries in MongoDB, reached over tarpc (the broker and the
//! listener, through `service_kit::logger_client::LoggerRpc`) and over HTTP.
//!
//! - [`settings`]: ports, MongoDB, batching knobs, from the environment.
//! - [`store`]: the `logs` collection, its indexes, bounded operations, per-document insert
//!   results, writes resent after a broken connection.
//! - [`batch`]: the writer that groups concurrent writes into one unordered `insert_many`.
//! - [`service`]: the operations both front doors share, with the input checks, and the
//!   bulkheads: each caller class (queued writes, interactive writes, reads) has its own share.
//! - [`rpc`]: the tarpc server implementing `contract::rpc::Logger`.
//! - [`routes`]: `POST /log`, `GET /logs`, `GET /logs/{id}`.
//! - [`metrics`]: entries written, batch sizes, store operations and errors, for `GET /metrics`.
//! - [`startup`]: [`Application`] binds both servers and runs them until SIGTERM.
//! - `testing` (feature): [`testing::TestLogger`], an in-process logger for tests.
#![forbid(unsafe_code)]

pub mod batch;
pub mod metrics;
pub mod routes;
pub mod rpc;
pub mod service;
pub mod settings;
pub mod startup;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use settings::Settings;
pub use startup::{Application, StopHandle};
