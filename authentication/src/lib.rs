//! The authentication service: users in PostgreSQL, passwords checked with bcrypt.
//!
//! - [`settings`]: `PORT`, `DSN`, `BCRYPT_COST` and the pool's limits.
//! - [`startup`]: [`Application::build`] prepares bcrypt, applies the [`migrations`] (retrying
//!   while Postgres starts), binds the port and starts the server with `/health` and `/ready`.
//! - [`tokens`]: the access token signer and its JWKS.
//! - [`routes`]: `POST /authenticate`, `POST /users` and the JWKS, one module each, with an error enum
//!   per route that picks the status code; they share one [`state::AppState`].
//! - [`store`]: the `users` table through a `deadpool-postgres` pool with prepared statements;
//!   every operation is bounded in time, and lost connections are replaced at the next request.
//! - [`password`]: bcrypt in `spawn_blocking`, and the dummy hash that makes a login for an
//!   unknown address as slow as one with a wrong password.
//!
//! - [`metrics`]: logins by outcome, the bcrypt queue and verify time, for `GET /metrics`.
//!
//! Login events are emitted by the broker, not here.
#![forbid(unsafe_code)]

pub mod metrics;
pub mod migrations;
pub mod password;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod store;
pub mod tokens;

pub use settings::{DatabaseSettings, Settings};
pub use startup::Application;
