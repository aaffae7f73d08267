//! `POST /handle`: read the body (bounded), parse it into a [`HandleRequest`] (which validates
//! it), and dispatch with an exhaustive `match`. Nothing reaches a downstream service unless
//! the request is valid.

use actix_web::error::ResponseError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use contract::Envelope;
use contract::auth::User;
use contract::handle::{HandleRequest, RequestError};
use contract::log::StoredEntry;
use service_kit::http::{MAX_BODY_BYTES, error_chain_fmt};

use crate::downstream::{DownstreamError, Downstreams};

pub mod actions;

/// Every way `/handle` can fail; the status follows from the variant, the message names the problem.
#[derive(thiserror::Error)]
pub enum HandleError {
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("cannot read request body: {0}")]
    Unreadable(String),
    /// Not JSON, not an object, unknown action, missing or invalid field.
    #[error(transparent)]
    Invalid(#[from] RequestError),
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error(transparent)]
    Downstream(#[from] DownstreamError),
}

impl std::fmt::Debug for HandleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        error_chain_fmt(self, f)
    }
}

impl ResponseError for HandleError {
    fn status_code(&self) -> StatusCode {
        match self {
            HandleError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HandleError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HandleError::Unreadable(_) | HandleError::Invalid(_) => StatusCode::BAD_REQUEST,
            HandleError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            HandleError::Downstream(error) => error.status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        service_kit::http::error_response(self)
    }
}

/// Dispatches one action to the service that performs it.
#[utoipa::path(
    post,
    path = "/handle",
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
        (status = 202, description = "`auth`: \"Authenticated!\" with the user in `data`. \
                                      `log`: \"logged\". `event`: \"logged via RabbitMQ\" (confirmed by RabbitMQ). \
                                      `mail`: \"Message sent to <to>\".",
         body = Envelope<User>),
        (status = 400, description = "Not JSON, not an object, unknown action, missing payload, or a field \
                                      missing, of the wrong type or invalid; the message names it.",
         body = Envelope),
        (status = 401, description = "`auth`: \"invalid credentials\".", body = Envelope),
        (status = 413, description = "The body is larger than 1 MiB.", body = Envelope),
        (status = 415, description = "The Content-Type is not application/json.", body = Envelope),
        (status = 502, description = "A downstream service is unreachable or failed; the message names it.",
         body = Envelope),
        (status = 504, description = "A downstream service did not answer within its timeout; the message \
                                      names it and the timeout.",
         body = Envelope),
    ),
)]
#[tracing::instrument(name = "handle", skip_all, fields(action = tracing::field::Empty))]
pub async fn handle(
    request: HttpRequest,
    payload: web::Payload,
    downstreams: web::Data<Downstreams>,
) -> Result<HttpResponse, HandleError> {
    require_json(request.headers())?;
    let body = read_body(request.headers(), payload).await?;
    let action = HandleRequest::parse(&body)?;
    tracing::Span::current().record("action", action.action());
    match action {
        HandleRequest::Auth { auth } => actions::auth(&downstreams, auth).await,
        HandleRequest::Log { log } => actions::log(&downstreams, log).await,
        HandleRequest::Event { log } => actions::event(&downstreams, log).await,
        HandleRequest::Mail { mail } => actions::mail(&downstreams, mail).await,
        HandleRequest::Logs { logs } => actions::logs(&downstreams, logs).await,
    }
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn require_json(headers: &HeaderMap) -> Result<(), HandleError> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::trim);
    match essence {
        Some(essence) if essence.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(HandleError::UnsupportedMediaType),
    }
}

/// The body, at most [`MAX_BODY_BYTES`]. A declared length over the limit is refused before a
/// byte is read; an undeclared (chunked) one as soon as it passes the limit.
async fn read_body(headers: &HeaderMap, payload: web::Payload) -> Result<web::Bytes, HandleError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(HandleError::TooLarge);
    }
    match payload.to_bytes_limited(MAX_BODY_BYTES).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(error)) => Err(HandleError::Unreadable(error.to_string())),
        Err(_) => Err(HandleError::TooLarge),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn with_content_type(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn json_content_types_are_accepted_with_or_without_parameters() {
        for value in ["application/json", "application/json; charset=utf-8", "Application/JSON"] {
            assert!(require_json(&with_content_type(value)).is_ok(), "{value}");
        }
    }

    #[test]
    fn other_content_types_are_refused() {
        for value in ["text/plain", "application/x-www-form-urlencoded", "application/jsonp", ""] {
            assert!(
                matches!(require_json(&with_content_type(value)), Err(HandleError::UnsupportedMediaType)),
                "{value}"
            );
        }
        assert!(require_json(&HeaderMap::new()).is_err(), "no Content-Type");
    }
}
