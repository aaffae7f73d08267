//! What the broker's handlers share: made once at start-up, handed to every worker.

use actix_web::web::Bytes;

use crate::downstream::Downstreams;
use crate::limits::Limits;
use crate::protect::TokenVerifier;

pub struct AppState {
    /// The clients of the four downstreams (`/handle`).
    pub downstreams: Downstreams,
    /// Checks the bearer token of protected actions against the cached JWKS.
    pub tokens: TokenVerifier,
    /// The per-client and failed-login limits, with their counts.
    pub limits: Limits,
    /// The body of `GET /openapi.json`: the OpenAPI document, rendered once at start-up by
    /// `routes::openapi::render_json`.
    pub openapi_json: Bytes,
}
