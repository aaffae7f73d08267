//! Structured logs: JSON lines by default, human-readable with `LOG_FORMAT=pretty` (multi-line)
//! or `LOG_FORMAT=compact` (one line per event).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::util::SubscriberInitExt;

use crate::settings::{Env, LOG_FORMAT, RUST_LOG};

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(service: &str, env: &Env) {
    let builder = tracing_subscriber::fmt().with_env_filter(filter_of(env)).with_target(false);
    let installed = match env.get(LOG_FORMAT) {
        Some("pretty") => builder.pretty().try_init(),
        // One line per event: what `project/stack.sh` shows, prefixed with the service's name.
        Some("compact") => builder.compact().try_init(),
        _ => json_subscriber(filter_of(env), std::io::stdout).try_init().map_err(Into::into),
    };
    if installed.is_ok() {
        tracing::info!(service, "telemetry initialised");
    }
}

fn filter_of(env: &Env) -> EnvFilter {
    EnvFilter::try_new(env.get(RUST_LOG).unwrap_or("info")).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The JSON lines of a deployed service (each event flat, with its span's fields), to `writer`.
pub fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl tracing_subscriber::util::SubscriberInitExt
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .finish()
}

/// For tests: logs go to the test's output only when `TEST_LOG` is set; safe to call often.
pub fn init_for_tests() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("debug"));
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
    });
}

/// The longest text a request's span or refusal event carries of one field (the path, a
/// header, an error message): what the caller sent is cut, so that no log line of a refused
/// request grows with the request (issue 16: a 500 KB action was logged whole, three times).
pub const MAX_LOGGED_CHARS: usize = 512;

/// `value` cut to [`MAX_LOGGED_CHARS`] characters, saying how long it was.
pub fn clipped(value: &str) -> std::borrow::Cow<'_, str> {
    match value.char_indices().nth(MAX_LOGGED_CHARS) {
        Some((cut, _)) => format!("{}... ({} bytes)", &value[..cut], value.len()).into(),
        None => value.into(),
    }
}

/// The root span of every request (tracing-actix-web's fields, OpenTelemetry names), with every
/// text the caller chose cut by [`clipped`], and one event when the request ends in a 4xx or 5xx:
/// a refusal at WARN, a failure at ERROR with its cause chain; the span carries the message.
pub struct BoundedRootSpan;

impl tracing_actix_web::RootSpanBuilder for BoundedRootSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        use actix_web::HttpMessage;
        let header =
            |name| request.headers().get(name).and_then(|v: &actix_web::http::header::HeaderValue| v.to_str().ok());
        let route = request.match_pattern().unwrap_or_else(|| "default".into());
        let info = request.connection_info();
        let request_id =
            request.extensions().get::<tracing_actix_web::RequestId>().map(ToString::to_string).unwrap_or_default();
        let target = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("");
        tracing::info_span!(
            "HTTP request",
            http.method = %clipped(request.method().as_str()),
            http.route = %route,
            http.flavor = ?request.version(),
            http.host = %clipped(info.host()),
            http.client_ip = %clipped(info.realip_remote_addr().unwrap_or("")),
            http.user_agent = %clipped(header(actix_web::http::header::USER_AGENT).unwrap_or("")),
            http.target = %clipped(target),
            http.status_code = tracing::field::Empty,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
            exception.message = tracing::field::Empty,
        )
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        let (status, error) = match outcome {
            Ok(response) => (response.status(), response.response().error()),
            Err(error) => (error.as_response_error().status_code(), Some(error)),
        };
        span.record("http.status_code", status.as_u16());
        span.record("otel.status_code", if status.is_server_error() { "ERROR" } else { "OK" });
        if status.as_u16() < 400 {
            return;
        }
        if let Some(error) = error {
            span.record("exception.message", &*clipped(&error.to_string()));
        }
        span.in_scope(|| match error {
            Some(error) if status.is_server_error() => {
                let details = format!("{:?}", error.as_response_error());
                tracing::error!(status = status.as_u16(), error.details = %clipped(&details), "request failed");
            }
            _ if status.is_server_error() => tracing::error!(status = status.as_u16(), "request failed"),
            // A 404 or a 405 has no error, only its status.
            _ => tracing::warn!(status = status.as_u16(), "request refused"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_text_is_cut_and_says_how_long_it_was() {
        assert_eq!(clipped("/handle"), "/handle");
        let exact = "x".repeat(MAX_LOGGED_CHARS);
        assert_eq!(clipped(&exact), exact.as_str());
        let long = "é".repeat(MAX_LOGGED_CHARS + 1);
        assert_eq!(clipped(&long), format!("{}... ({} bytes)", "é".repeat(MAX_LOGGED_CHARS), long.len()));
    }
}
