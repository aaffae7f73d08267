//! The REST paths of every service, defined once: each service registers its routes with
//! these and every client (the broker's downstreams, the OpenAPI document) calls them.

/// Liveness, on every service (served by `service_kit::health`).
pub const HEALTH: &str = "/health";
/// Readiness: the service's dependencies answer; on every service.
pub const READY: &str = "/ready";
/// Prometheus metrics (text exposition format); on every service (served by
/// `service_kit::metrics`).
pub const METRICS: &str = "/metrics";

/// The broker: the system's entry point.
pub mod broker {
    /// `POST`: "Hit the broker", the test page's first button.
    pub const ROOT: &str = "/";
    /// `GET`: a heartbeat for load balancers.
    pub const PING: &str = "/ping";
    /// `POST {"action": ...}`: one action, dispatched to the service that performs it.
    pub const HANDLE: &str = "/handle";
    /// `GET`: the broker's API as an OpenAPI document.
    pub const OPENAPI: &str = "/openapi.json";
}

/// The authentication service.
pub mod authentication {
    /// `POST {"email", "password"}`: checks credentials.
    pub const AUTHENTICATE: &str = "/authenticate";
    /// `POST`: registers a user.
    pub const USERS: &str = "/users";
    /// `GET`: the public keys that verify its access tokens (RFC 7517), current and previous.
    pub const JWKS: &str = "/.well-known/jwks.json";
}

/// The logger's HTTP API (its RPC contract is `crate::rpc`).
pub mod logger {
    /// `POST {"name", "data", "level"?}`: stores one entry.
    pub const LOG: &str = "/log";
    /// `GET ?limit=&before=`: the newest entries first.
    pub const LOGS: &str = "/logs";
    /// `GET`: one entry by id (an actix-web route template).
    pub const LOG_BY_ID: &str = "/logs/{id}";
}

/// The mailer.
pub mod mailer {
    /// `POST {"from"?, "to", "subject", "message"}`: sends one mail.
    pub const SEND: &str = "/send";
}
