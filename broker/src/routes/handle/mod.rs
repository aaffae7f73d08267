//! `POST /handle`: read the body (bounded), parse it into a [`HandleRequest`] (which validates
//! it), and dispatch with an exhaustive `match`. Nothing reaches a downstream service unless
//! the request is valid.

use actix_web::error::ResponseError;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use contract::Envelope;
use contract::handle::{HandleRequest, RequestError};
use contract::log::StoredEntry;
use contract::paths;
use contract::token::SignedIn;
use service_kit::http::{BodyError, error_chain_fmt, read_json_body};

use crate::downstream::DownstreamError;
use crate::limits::Refusal;
use crate::protect::TokenError;
use crate::state::AppState;

pub mod actions;

/// Every way `/handle` can fail; the status follows from the variant, the message names the problem.
#[derive(thiserror::Error)]
pub enum HandleError {
    /// Not `application/json` (415), over 1 MiB (413), or not received whole (400).
    #[error(transparent)]
    Body(#[from] BodyError),
    /// Not JSON, not an object, unknown action, missing or invalid field.
    #[error(transparent)]
    Invalid(#[from] RequestError),
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error(transparent)]
    Downstream(#[from] DownstreamError),
    /// A protected action without a valid token (401), or the keys to check it unavailable (503).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The client is over its rate, or has failed to log in too often (429).
    #[error(transparent)]
    Limited(#[from] Refusal),
}

impl std::fmt::Debug for HandleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        error_chain_fmt(self, f)
    }
}

impl ResponseError for HandleError {
    fn status_code(&self) -> StatusCode {
        match self {
            HandleError::Body(error) => error.status_code(),
            HandleError::Invalid(_) => StatusCode::BAD_REQUEST,
            HandleError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            HandleError::Downstream(error) => error.status(),
            HandleError::Token(error) => error.status(),
            HandleError::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = service_kit::http::error_response(self);
        if let HandleError::Token(error) = self {
            error.decorate(&mut response);
        }
        if let HandleError::Limited(refusal) = self {
            refusal.decorate(&mut response);
        }
        // A downstream that is overloaded or waiting for its database asks callers to come back
        // shortly; one whose circuit is open, when it half-opens.
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            let seconds = match self {
                HandleError::Downstream(error) => error.retry_after().map_or(1, crate::breaker::whole_seconds),
                _ => 1,
            };
            let retry_after = actix_web::http::header::HeaderValue::from(seconds);
            response.headers_mut().insert(actix_web::http::header::RETRY_AFTER, retry_after);
        }
        response
    }
}

/// Dispatches one action to the service that performs it.
///
/// Every answer, an error too, carries `Server-Timing`: each hop the request made, in the order
/// they ended, with its duration in ms (`auth`, `log`, `logs`, `mail`, `event`, `mail-job`), then
/// the handler's `total`, e.g. `auth;dur=231.4, event;dur=1.2, total;dur=233.0`.
#[utoipa::path(
    post,
    path = paths::broker::HANDLE,
    tag = "broker",
    request_body(
        content = HandleRequest,
        content_type = "application/json",
        description = "`{\"action\": A, ...}` with the payload under a key named after the action \
                       (`event` carries it under `log`). At most 1 MiB.",
    ),
    responses(
        (status = 200, description = "`logs`: the newest entries first, in `data`.",
         body = Envelope<Vec<StoredEntry>>),
        (status = 202, description = "`auth`: \"Authenticated!\" with the user in `data`, and beside its \
                                      fields `token` (a JWT for `Authorization: Bearer`) and `expires_in`. \
                                      `log`: \"logged\", or \"logged via RabbitMQ (logger \
                                      unavailable)\" when the logger is down: stored by the listener once it is \
                                      back. `event`: \"logged via RabbitMQ\" (confirmed by RabbitMQ). \
                                      `mail`: \"Message sent to <to>\", or \"Message queued for <to>\" when the mailer \
                                      is down and the mail waits on RabbitMQ for it.",
         body = Envelope<SignedIn>),
        (status = 400, description = "Not JSON, not an object, unknown action, missing payload, or a field \
                                      missing, of the wrong type or invalid; the message names it.",
         body = Envelope),
        (status = 401, description = "`auth`: \"invalid credentials\" (also for a password over 72 bytes, which \
                                      no account has). A protected action (`PROTECTED_ACTIONS`, default `logs`, \
                                      `mail`) without a valid `Authorization: Bearer` token, or any action but \
                                      `auth` with a bad one: the message says why (missing, expired, bad \
                                      signature, wrong audience, unknown key); `WWW-Authenticate: Bearer` per \
                                      RFC 6750.", body = Envelope),
        (status = 404, description = "`logs`: no entry has the id `before` (as the logger's \
                                      `GET /logs?before=` answers).", body = Envelope),
        (status = 413, description = "The body is larger than 1 MiB.", body = Envelope),
        (status = 429, description = "The client is over its rate (`RATE_LIMIT_PER_MINUTE`, `RATE_LIMIT_BURST`), \
                                      or `auth` after too many failed logins for this email or from this client; \
                                      the message names the limit. `Retry-After` (seconds), `RateLimit-Policy` \
                                      and `RateLimit` (draft-ietf-httpapi-ratelimit-headers) say when to retry.",
         body = Envelope),
        (status = 415, description = "The Content-Type is not application/json.", body = Envelope),
        (status = 502, description = "A downstream service is unreachable or failed; the message names it.",
         body = Envelope),
        (status = 503, description = "A downstream service is overloaded or its own dependency is down \
                                      (e.g. a login storm beyond the authentication service's queue), \
                                      or its circuit is open after repeated failures (\"mailer unavailable: \
                                      circuit open, retry in 7 s\", not called at all); the message names it; \
                                      `Retry-After` says when to try again.",
         body = Envelope),
        (status = 504, description = "A downstream service did not answer within its timeout; the message \
                                      names it and the timeout.",
         body = Envelope),
    ),
    // Optional: only the `PROTECTED_ACTIONS` need a token; a token sent with another action but
    // `auth` is verified (401 if bad) and its `sub` recorded.
    security((), ("bearer" = [])),
)]
#[tracing::instrument(name = "handle", skip_all, fields(action = tracing::field::Empty, sub = tracing::field::Empty))]
pub async fn handle(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HandleError> {
    // Before the body is read: a client over its rate costs the least work possible.
    let client = state.limits.client_of(&request);
    state.limits.check_request(client)?;
    let body = read_json_body(&request, payload).await?;
    let downstreams = &state.downstreams;
    let action = HandleRequest::parse(&body)?;
    tracing::Span::current().record("action", action.action());
    let sub = state.tokens.check(&request, action.action()).await?.map(|claims| claims.sub);
    if let Some(sub) = &sub {
        tracing::Span::current().record("sub", sub.as_str());
    }
    // Each action's future is boxed: inline, their sum (breaker, metrics and fallback layers
    // around every hop) made the handler's poll frames overflow an actix worker's stack in the
    // debug build. One allocation per request.
    match action {
        HandleRequest::Auth { auth } => {
            // Refused here, the attempt never reaches bcrypt; let through, it counts as a failure
            // unless the password turns out right.
            let attempt = state.limits.admit_login(auth.email.as_ref(), client)?;
            let answer = Box::pin(actions::auth(downstreams, auth)).await;
            match &answer {
                Err(HandleError::InvalidCredentials) => attempt.failed(),
                Ok(_) => attempt.succeeded(),
                // No verdict on the password (a downstream failure): nothing counts.
                Err(_) => drop(attempt),
            }
            answer
        }
        HandleRequest::Log { log } => Box::pin(actions::log(downstreams, log, sub)).await,
        HandleRequest::Event { log } => Box::pin(actions::event(downstreams, log, sub)).await,
        HandleRequest::Mail { mail } => Box::pin(actions::mail(downstreams, mail)).await,
        HandleRequest::Logs { logs } => Box::pin(actions::logs(downstreams, logs)).await,
    }
}
