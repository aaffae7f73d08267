//! Structured logs and traces. Logs: JSON lines by default, each with the request's `trace_id`
//! beside the event's fields and its spans; human-readable with `LOG_FORMAT=pretty` (multi-line)
//! or `LOG_FORMAT=compact` (one line per event). Lines are written by a thread of their own
//! through a bounded queue ([`tracing_appender::non_blocking`]), so a request never waits on
//! stdout; past [`LOG_QUEUE_LINES`] unwritten lines, further ones are dropped rather than block.
//!
//! Traces: every span is also an OpenTelemetry span ([`crate::trace`]), so each request has a
//! W3C trace id that its hops carry on; with `OTEL_EXPORTER_OTLP_ENDPOINT` set the spans are
//! exported over OTLP/HTTP by a batch processor's thread (a bounded queue too). Span creation
//! follows `RUST_LOG` like the lines do.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::settings::{Env, LOG_FORMAT, RUST_LOG};

/// The OTLP/HTTP endpoint (`http://collector:4318`) spans are exported to; `/v1/traces` is
/// appended, as the OpenTelemetry specification says. Unset: no export.
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// `true` turns tracing off altogether (the OpenTelemetry specification's switch): no trace ids,
/// no propagation, no `traceresponse`. For measuring what tracing costs.
pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";

/// How long one export request may take before it is given up (the batch is dropped).
pub const OTLP_EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a request's root span records its trace id as a field: for the human formats, whose
/// lines show span fields; JSON lines have it at their top level anyway.
static SPAN_TRACE_ID: AtomicBool = AtomicBool::new(false);

/// Log lines waiting for the writer thread; more are dropped (tracing-appender's default).
pub const LOG_QUEUE_LINES: usize = 128_000;

/// What must outlive the service's run: the log writer thread and the span exporter. Dropped
/// at the end of `main`, it writes the lines and exports the spans still queued.
#[must_use = "logs and spans still queued are lost when this is dropped"]
pub struct Telemetry {
    _writer: tracing_appender::non_blocking::WorkerGuard,
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        // Exports what is queued (bounded by the exporter's timeout); nothing to do without one.
        let _ = self.provider.shutdown();
    }
}

/// Installs the global subscriber. Call once, first thing in `main`, and keep the guard.
pub fn init(service: &str, env: &Env) -> Telemetry {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("log-writer")
        .finish(std::io::stdout());
    let disabled = env.get(OTEL_SDK_DISABLED).is_some_and(|value| value.eq_ignore_ascii_case("true"));
    // Disabled, no exporter is built either: no export thread, no HTTP client.
    let endpoint = env.get(OTEL_EXPORTER_OTLP_ENDPOINT).filter(|_| !disabled);
    let (provider, export_error) = tracer_provider(service, endpoint);
    let otel = (!disabled).then(|| otel_layer(service, &provider));
    let filter = filter_of(env);
    let plain = tracing_subscriber::fmt::layer().with_target(false).with_writer(writer.clone());
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let format = env.get(LOG_FORMAT);
    SPAN_TRACE_ID.store(matches!(format, Some("pretty" | "compact")), Ordering::Relaxed);
    let installed = match format {
        Some("pretty") => registry.with(plain.pretty()).try_init(),
        // One line per event: what `project/stack.sh` shows, prefixed with the service's name.
        Some("compact") => registry.with(plain.compact()).try_init(),
        _ => registry.with(json_layer(writer)).try_init(),
    };
    if installed.is_ok() {
        let otlp_endpoint = if disabled { "none (tracing disabled)" } else { endpoint.unwrap_or("none") };
        tracing::info!(service, otlp_endpoint, "telemetry initialised");
    }
    if let Some(error) = export_error {
        tracing::warn!(%error, "spans are not exported: the OTLP exporter could not be built");
    }
    Telemetry { _writer: guard, provider }
}

/// The process's tracer provider: with a batch OTLP exporter to `endpoint`, or none (spans
/// get ids, so traces propagate, and are dropped when they end).
fn tracer_provider(service: &str, endpoint: Option<&str>) -> (SdkTracerProvider, Option<String>) {
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service.to_owned()).build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let Some(endpoint) = endpoint else { return (builder.build(), None) };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_timeout(OTLP_EXPORT_TIMEOUT)
        .build();
    match exporter {
        Ok(exporter) => (builder.with_batch_exporter(exporter).build(), None),
        Err(error) => (builder.build(), Some(error.to_string())),
    }
}

/// The layer that makes every span an OpenTelemetry span of `provider`'s.
fn otel_layer<S>(service: &str, provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service.to_owned()))
        // Nothing reads OpenTelemetry's thread-local "current context" (tarpc and [`crate::trace`]
        // ask the span): without activation, entering a span (every poll of an instrumented
        // future) costs no context push and pop.
        .with_context_activation(false)
        .with_threads(false)
        .with_location(false)
        // No busy/idle time per span: two clock reads on every poll of every instrumented future.
        .with_tracked_inactivity(false)
}

fn filter_of(env: &Env) -> EnvFilter {
    EnvFilter::try_new(env.get(RUST_LOG).unwrap_or("info")).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The JSON lines of a deployed service, to `writer`: each event flat, its `trace_id`, its
/// span's fields and the spans it is in.
fn json_layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let mut layer = json_subscriber::fmt::layer()
        .with_target(false)
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(writer);
    layer.inner_layer_mut().add_dynamic_field("trace_id", |_event, _context| crate::trace::current_trace_id());
    layer
}

/// A test process's OpenTelemetry layer: spans with ids, never exported.
fn test_otel_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    otel_layer("test", &tracer_provider("test", None).0)
}

/// The services' JSON lines and their traces (no export), to `writer`, as a subscriber a test
/// installs ([`crate::testing::capture_logs`]).
pub fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl tracing_subscriber::util::SubscriberInitExt
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::registry().with(filter).with(test_otel_layer()).with(json_layer(writer))
}

/// For tests: every span is an OpenTelemetry span, as in a service (so a test sees the trace
/// ids its requests carry), and logs go to the test's output only when `TEST_LOG` is set; safe
/// to call often.
pub fn init_for_tests() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        SPAN_TRACE_ID.store(true, Ordering::Relaxed);
        let registry = tracing_subscriber::registry().with(test_otel_layer());
        let _ = if std::env::var_os("TEST_LOG").is_some() {
            let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("debug"));
            registry.with(tracing_subscriber::fmt::layer().with_test_writer().with_filter(filter)).try_init()
        } else {
            registry.with(tracing_subscriber::filter::LevelFilter::INFO).try_init()
        };
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
/// The span continues the caller's trace when the request carries a `traceparent`, and starts
/// one otherwise; its `trace_id` is the request's id in every line (tracing-actix-web's UUID
/// request id is not logged).
pub struct BoundedRootSpan;

impl tracing_actix_web::RootSpanBuilder for BoundedRootSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        let header =
            |name| request.headers().get(name).and_then(|v: &actix_web::http::header::HeaderValue| v.to_str().ok());
        let route = request.match_pattern().unwrap_or_else(|| "default".into());
        let info = request.connection_info();
        let target = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("");
        // Plain `&str` values: a layer records a string as it is, a `%` value through a formatter.
        let span = tracing::info_span!(
            "HTTP request",
            http.method = &*clipped(request.method().as_str()),
            http.route = route.as_str(),
            http.host = &*clipped(info.host()),
            http.client_ip = &*clipped(info.realip_remote_addr().unwrap_or("")),
            http.user_agent = &*clipped(header(actix_web::http::header::USER_AGENT).unwrap_or("")),
            http.target = &*clipped(target),
            otel.kind = "server",
            trace_id = tracing::field::Empty,
        );
        crate::trace::set_parent(&span, &crate::trace::HeaderExtractor(request.headers()));
        // JSON lines carry the trace id at their top level; only the human formats need it as a
        // span field (json-subscriber re-serialises a span's every field on each record).
        if SPAN_TRACE_ID.load(Ordering::Relaxed)
            && let Some(trace_id) = crate::trace::trace_id(&span)
        {
            span.record("trace_id", trace_id);
        }
        span
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        let (status, error) = match outcome {
            Ok(response) => (response.status(), response.response().error()),
            Err(error) => (error.as_response_error().status_code(), Some(error)),
        };
        // Straight to the OpenTelemetry span, not recorded as tracing fields: the log layers would
        // re-serialise the span for lines that, for an answer under 400, are never written. A
        // refusal's or failure's line carries the status and the message itself.
        span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
        if status.as_u16() < 400 {
            return;
        }
        let message = error.map(|error| clipped(&error.to_string()).into_owned());
        if status.is_server_error() {
            // OpenTelemetry's HTTP conventions: a server span is an error for a 5xx only.
            span.set_status(opentelemetry::trace::Status::error(message.clone().unwrap_or_default()));
        }
        span.in_scope(|| match error {
            Some(error) if status.is_server_error() => {
                let details = format!("{:?}", error.as_response_error());
                tracing::error!(status = status.as_u16(), exception.message = message.as_deref(), error.details = %clipped(&details),
                    "request failed");
            }
            _ if status.is_server_error() => tracing::error!(status = status.as_u16(), "request failed"),
            // A 404 or a 405 has no error, only its status.
            _ => tracing::warn!(status = status.as_u16(), exception.message = message.as_deref(), "request refused"),
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
