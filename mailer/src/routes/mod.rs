//! One file per endpoint (`/health` and `/ready` come from `service_kit`).

mod send;

pub use send::{SendError, send};
