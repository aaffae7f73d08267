//! Rendering errors into the envelope, and reading bodies: the deadline on every request body
//! ([`bounded_body`]), the extractor limits every service uses, and the bounded raw read for a
//! handler that parses the body itself.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PayloadError, ResponseError};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use contract::Envelope;
use contract::validate::quote;
use futures::StreamExt;
use serde::Serialize;

use crate::settings::DEFAULT_BODY_TIMEOUT;

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

/// A JSON body that could not be read, mapped onto the status a client can act on. The one
/// definition of these refusals, whether the body is read by `web::Json` ([`json_config`]) or
/// by hand ([`read_json_body`]).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BodyError {
    status: StatusCode,
    message: String,
}

impl BodyError {
    /// 413: over [`MAX_BODY_BYTES`].
    pub fn too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body is larger than {MAX_BODY_BYTES} bytes"))
    }

    /// 415: not `application/json`.
    pub fn unsupported_media_type() -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json")
    }

    /// 400: the body could not be received.
    pub fn unreadable(reason: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, format!("cannot read request body: {reason}"))
    }

    pub fn from_json_error(error: &JsonPayloadError) -> Self {
        match error {
            JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => Self::too_large(),
            JsonPayloadError::ContentType => Self::unsupported_media_type(),
            // Never quote the offending value back: it may be a password.
            JsonPayloadError::Deserialize(e) if e.is_data() => Self::new(
                StatusCode::BAD_REQUEST,
                format!("invalid request: {}", contract::validate::without_values(&e.to_string())),
            ),
            JsonPayloadError::Deserialize(e) => {
                Self::new(StatusCode::BAD_REQUEST, format!("request body is not valid JSON: {e}"))
            }
            other => Self::unreadable(other),
        }
    }

    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
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

/// The raw body of a JSON request, for a handler that parses it itself (the broker's `/handle`
/// names every refusal its own way). Refused unless the Content-Type is `application/json`
/// (with or without parameters); a declared length over [`MAX_BODY_BYTES`] is refused before a
/// byte is read, an undeclared (chunked) one as soon as it passes the limit.
pub async fn read_json_body(request: &HttpRequest, payload: web::Payload) -> Result<web::Bytes, BodyError> {
    let headers = request.headers();
    require_json(headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(BodyError::too_large());
    }
    match payload.to_bytes_limited(MAX_BODY_BYTES).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(error)) => Err(BodyError::unreadable(error)),
        Err(_) => Err(BodyError::too_large()),
    }
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn require_json(headers: &HeaderMap) -> Result<(), BodyError> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::trim);
    match essence {
        Some(essence) if essence.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(BodyError::unsupported_media_type()),
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

/// How long a request's body may take to arrive, counted from the end of its header section:
/// app data for [`bounded_body`], set by `HttpService` from `BODY_TIMEOUT_MS`.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// Middleware on every service: the request body is read under one deadline, whoever reads it
/// (`web::Json`, [`read_json_body`], any other extractor). actix bounds only the header section;
/// a body that stalls, slowly or short of its `Content-Length`, would hold the connection and
/// the handler for as long as the client likes. Past the deadline the reader gets an error, and
/// whatever the handler made of it is replaced by a 408 in the envelope on a closed connection
/// (the rest of the body is never coming, so the connection cannot be reused).
pub async fn bounded_body(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if !may_have_body(request.headers()) {
        return Ok(next.call(request).await?.map_into_left_body());
    }
    let timeout = request.app_data::<BodyTimeout>().map_or(DEFAULT_BODY_TIMEOUT, |timeout| timeout.0);
    let deadline = tokio::time::Instant::now() + timeout;
    let expired = Rc::new(Cell::new(false));
    let flag = expired.clone();
    let body = futures::stream::unfold(Some(request.take_payload()), move |payload| {
        let flag = flag.clone();
        async move {
            let mut payload = payload?;
            match tokio::time::timeout_at(deadline, payload.next()).await {
                Ok(Some(chunk)) => Some((chunk, Some(payload))),
                Ok(None) => None,
                Err(_) => {
                    flag.set(true);
                    let error = std::io::Error::new(std::io::ErrorKind::TimedOut, "request body timed out");
                    Some((Err(PayloadError::Io(error)), None))
                }
            }
        }
    });
    let body: std::pin::Pin<Box<dyn futures::Stream<Item = Result<web::Bytes, PayloadError>>>> = Box::pin(body);
    request.set_payload(Payload::from(body));
    let response = next.call(request).await?;
    if !expired.get() {
        return Ok(response.map_into_left_body());
    }
    let (request, _) = response.into_parts();
    let mut timed_out =
        error(StatusCode::REQUEST_TIMEOUT, format!("request body did not arrive within {} ms", timeout.as_millis()));
    timed_out.head_mut().set_connection_type(ConnectionType::Close);
    Ok(ServiceResponse::new(request, timed_out).map_into_right_body())
}

/// Whether an HTTP/1.1 request has a body: only with `Transfer-Encoding` or a `Content-Length`
/// other than 0 (RFC 9112, 6.3). Most of the API's requests (`GET`s, `POST /`) have none, and
/// skip the body's deadline stream.
fn may_have_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers.get(header::CONTENT_LENGTH).is_some_and(|length| length.as_bytes() != b"0")
}

/// The fallback for unknown routes: a 404 in the envelope rather than an empty body. The path
/// is the caller's: quoted short ([`contract::validate::quote`]); so is a method that is not
/// one of the usual.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let method = req.method().as_str();
    let method = if method.len() <= 7 { method.to_owned() } else { quote(method) };
    error(StatusCode::NOT_FOUND, format!("no route for {method} {}", quote(req.path())))
}

/// The `Host` names a server answers (`ALLOWED_HOSTS`): app data for [`allowed_host`].
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    /// Lowercase, without a trailing dot; `None` when `*` answers any.
    names: Option<Vec<String>>,
}

impl AllowedHosts {
    pub fn new(names: &[String]) -> Self {
        if names.iter().any(|name| name == "*") {
            return Self { names: None };
        }
        Self { names: Some(names.iter().map(|name| normalised(name)).collect()) }
    }

    /// Whether `host` (a `Host` header's value: a name, an IPv4 address or a bracketed IPv6
    /// one, with or without `:port`) is one of the names.
    pub fn allows(&self, host: &str) -> bool {
        let Some(names) = &self.names else { return true };
        let name = match host.rsplit_once(':') {
            // `[::1]:8080`, `name:8080`; a bare `[::1]` has its last colon inside the brackets.
            Some((name, port)) if !port.contains(']') && port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        let name = name.trim().trim_end_matches('.');
        names.iter().any(|allowed| allowed.eq_ignore_ascii_case(name))
    }
}

fn normalised(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// A request for a `Host` the server does not answer: 400 in the envelope, naming the host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("request has no Host header")]
    Missing,
    #[error("host {} is not allowed here (ALLOWED_HOSTS)", quote(.0))]
    NotAllowed(String),
}

impl ResponseError for HostError {
    fn status_code(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    fn error_response(&self) -> HttpResponse {
        error(self.status_code(), self.to_string())
    }
}

/// Middleware on every service: a request whose `Host` is not in `ALLOWED_HOSTS` is refused
/// before any route runs (DNS rebinding: a browser on another site sends that site's name).
/// `/health`, `/ready` and `/metrics` answer any host: Kubernetes probes and Prometheus address
/// the pod by its IP (metrics carry no user data).
/// The refusal is an error, so that the request's log line records it.
pub async fn allowed_host(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let probe = matches!(request.path(), contract::paths::HEALTH | contract::paths::READY | contract::paths::METRICS);
    if let Some(allowed) = request.app_data::<AllowedHosts>().filter(|_| !probe) {
        // HTTP/1.1 puts the host in `Host`; an absolute-form request line in the URI.
        let host = request
            .uri()
            .authority()
            .map(|authority| std::borrow::Cow::Borrowed(authority.as_str()))
            .or_else(|| request.headers().get(header::HOST).map(|v| String::from_utf8_lossy(v.as_bytes())));
        match host {
            None => return Err(HostError::Missing.into()),
            Some(host) if !allowed.allows(&host) => return Err(HostError::NotAllowed(host.into_owned()).into()),
            Some(_) => {}
        }
    }
    next.call(request).await
}

/// Middleware on every service, inside the request's root span: the answer names the trace it
/// is part of in `traceresponse` (W3C Trace Context Level 2; the same shape as `traceparent`),
/// so that a caller can find its request's lines, stored entries and exported spans.
pub async fn trace_response(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(request).await?;
    if let Some(value) = crate::trace::traceresponse(&tracing::Span::current())
        .and_then(|value| header::HeaderValue::from_str(&value).ok())
    {
        response.headers_mut().insert(header::HeaderName::from_static(crate::trace::TRACERESPONSE), value);
    }
    Ok(response)
}

/// The header naming each hop of a request and its duration (W3C Server Timing); the broker
/// writes it, CORS lets the test page (another origin) read it.
pub const SERVER_TIMING: &str = "server-timing";
/// The origins whose pages may see a response's timings (Resource Timing): browsers show
/// `Server-Timing` of a cross-origin call only to them.
pub const TIMING_ALLOW_ORIGIN: &str = "timing-allow-origin";

/// The JSON API's answer to framing: none.
pub const API_CONTENT_SECURITY_POLICY: &str = "frame-ancestors 'none'";

/// Middleware on every service, outermost, so that every answer has them, errors and 404s
/// included: `X-Content-Type-Options: nosniff` (a browser never guesses a script out of a
/// JSON body), `X-Frame-Options: DENY` and, unless the handler set its own (the frontend's page
/// has a stricter one, with `frame-ancestors 'none'` in it), `Content-Security-Policy:
/// frame-ancestors 'none'`: no page may frame an answer.
pub async fn security_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // An error here is a `Refusal` of `envelope_refusals`, which adds them itself.
    let mut response = next.call(request).await?;
    add_security_headers(response.headers_mut());
    Ok(response)
}

fn add_security_headers(headers: &mut HeaderMap) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, header::HeaderValue::from_static(API_CONTENT_SECURITY_POLICY));
    }
}

/// Middleware on every service, just inside [`security_headers`]: a refusal that actix or a
/// middleware produced without our envelope (a 405 of an undeclared method, a CORS refusal, an
/// extractor's plain-text error) gets it, with its status and headers (`Allow`) kept. The
/// message is the error's, cut short, or the status's reason. What actix answers before any
/// app code runs (431 for a header section over its buffer, 400 for a malformed request line,
/// 408 for a header section that stalls) never reaches this, and stays bare: there is no hook
/// for it in actix-web 4 (pinned by a test in `service-kit/tests/http.rs`).
pub async fn envelope_refusals(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    match next.call(request).await {
        Ok(response) => {
            let is_json = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .is_some_and(|value| value.starts_with("application/json"));
            if response.status().as_u16() < 400 || is_json {
                return Ok(response.map_into_left_body());
            }
            let message = response.response().error().map(|error| error.to_string());
            let enveloped = Refusal::new(response.status(), response.headers(), message).render();
            Ok(ServiceResponse::new(response.into_parts().0, enveloped).map_into_right_body())
        }
        // An error passed up by a middleware (actix-cors refuses an origin so) has lost its
        // request, and actix renders it outside every middleware: it is passed on as a
        // [`Refusal`], which renders itself in the envelope with the security headers.
        Err(error) => {
            let response = error.error_response();
            Err(Refusal::new(response.status(), response.headers(), Some(error.to_string())).into())
        }
    }
}

/// A refusal in the envelope, for [`envelope_refusals`]: its status, the headers that came with
/// it (`Allow`, CORS's) and a message: the error's, its first line cut short and without
/// values, or the status's reason.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    headers: HeaderMap,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, headers: &HeaderMap, message: Option<String>) -> Self {
        const MAX_MESSAGE_CHARS: usize = 200;
        let message = message
            .map(|message| contract::validate::without_values(message.lines().next().unwrap_or_default()))
            .filter(|message| !message.trim().is_empty())
            .map(|message| match message.char_indices().nth(MAX_MESSAGE_CHARS) {
                Some((cut, _)) => format!("{}...", &message[..cut]),
                None => message,
            })
            .unwrap_or_else(|| match headers.get(header::ALLOW).and_then(|allow| allow.to_str().ok()) {
                Some(allow) if status == StatusCode::METHOD_NOT_ALLOWED => {
                    format!("method not allowed here; allowed: {allow}")
                }
                _ => status.canonical_reason().unwrap_or("refused").to_lowercase(),
            });
        let mut kept = HeaderMap::new();
        for (name, value) in headers {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                kept.append(name.clone(), value.clone());
            }
        }
        Self { status, headers: kept, message }
    }

    fn render(&self) -> HttpResponse {
        let mut response = error(self.status, self.message.clone());
        for (name, value) in &self.headers {
            response.headers_mut().append(name.clone(), value.clone());
        }
        response
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = self.render();
        add_security_headers(response.headers_mut());
        response
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
    fn allowed_hosts_match_the_name_on_any_port() {
        let defaults: Vec<String> = crate::settings::DEFAULT_ALLOWED_HOSTS.iter().map(|h| (*h).to_owned()).collect();
        let allowed = AllowedHosts::new(&defaults);
        let cases = [
            ("localhost", true),
            ("localhost:8080", true),
            ("LocalHost.:8080", true),
            ("127.0.0.1:1", true),
            ("[::1]", true),
            ("[::1]:8080", true),
            ("broker:8080", true),
            ("authentication:8083", true),
            ("evil.example", false),
            ("localhost.evil.example", false),
            ("127.0.0.2", false),
            ("[::2]:80", false),
            ("broker:port", false),
            ("", false),
        ];
        for (host, expected) in cases {
            assert_eq!(allowed.allows(host), expected, "{host:?}");
        }
        assert!(AllowedHosts::new(&["*".into()]).allows("anything:1"));
        let public = AllowedHosts::new(&["broker".into(), "Broker.Micro.Example.com".into()]);
        assert!(public.allows("broker.micro.example.com") && !public.allows("localhost"));
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
            let error = require_json(&with_content_type(value)).unwrap_err();
            assert_eq!(error.status_code(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{value}");
            assert_eq!(error.to_string(), "Content-Type must be application/json", "{value}");
        }
        assert!(require_json(&HeaderMap::new()).is_err(), "no Content-Type");
    }
}
