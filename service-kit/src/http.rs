//! Rendering errors into the envelope, and the JSON extractor every service uses.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, ResponseError};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use contract::Envelope;
use serde::Serialize;

/// The largest JSON body any endpoint accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A response with `status` and the envelope as its body.
pub fn envelope<T: Serialize>(status: StatusCode, body: &Envelope<T>) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

/// An error response: `{"error": true, "message": ...}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    envelope(status, &Envelope::error(message))
}

/// The envelope for any `ResponseError`: its `Display` (safe for users) and its status.
/// Services call this from `ResponseError::error_response`; server errors are logged with
/// their `Debug` form, which prints the cause chain.
pub fn error_response<E: ResponseError + std::fmt::Debug>(err: &E) -> HttpResponse {
    let status = err.status_code();
    if status.is_server_error() {
        tracing::error!(error.cause_chain = ?err, error.message = %err, "request failed");
    }
    error(status, err.to_string())
}

/// An error and its causes on one line (`a: b: c`), for log fields and readiness reports.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// Writes an error and each of its sources on its own line; for `Debug` impls.
pub fn error_chain_fmt(err: &impl std::error::Error, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    writeln!(f, "{err}")?;
    let mut current = err.source();
    while let Some(cause) = current {
        writeln!(f, "Caused by:\n\t{cause}")?;
        current = cause.source();
    }
    Ok(())
}

/// A JSON body that could not be read, mapped onto the status a client can act on.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BodyError {
    status: StatusCode,
    message: String,
}

impl BodyError {
    pub fn from_json_error(error: &JsonPayloadError) -> Self {
        let (status, message) = match error {
            JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, format!("request body is larger than {MAX_BODY_BYTES} bytes"))
            }
            JsonPayloadError::ContentType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json".to_owned())
            }
            // Never quote the offending value back: it may be a password.
            JsonPayloadError::Deserialize(e) if e.is_data() => (
                StatusCode::BAD_REQUEST,
                format!("invalid request: {}", contract::validate::without_values(&e.to_string())),
            ),
            JsonPayloadError::Deserialize(e) => {
                (StatusCode::BAD_REQUEST, format!("request body is not valid JSON: {e}"))
            }
            other => (StatusCode::BAD_REQUEST, format!("cannot read request body: {other}")),
        };
        Self { status, message }
    }
}

impl ResponseError for BodyError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        error(self.status, self.message.clone())
    }
}

/// `web::Json` limits and error bodies: 1 MiB, 413/415/400 in the envelope.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(|error, _req| BodyError::from_json_error(&error).into())
}

/// Middleware for the endpoints the Go original calls without a `Content-Type` (its broker's
/// `POST /authenticate`, its authentication service's `POST /log`): a request that declares no
/// type is read as JSON, as the original's own services read it. A request that declares another
/// type is still refused with 415; that needs the extractor's check, so the header is added
/// rather than the check turned off.
pub async fn untyped_body_is_json(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !request.headers().contains_key(header::CONTENT_TYPE) {
        request.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    }
    next.call(request).await
}

/// The fallback for unknown routes: a 404 in the envelope rather than an empty body.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    error(StatusCode::NOT_FOUND, format!("no route for {} {}", req.method(), req.path()))
}
