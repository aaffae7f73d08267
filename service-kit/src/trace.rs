//! One trace per request across every hop, in W3C Trace Context (`traceparent`).
//!
//! Every span is an OpenTelemetry span (the `tracing-opentelemetry` layer that
//! [`crate::telemetry::init`] installs), so a trace id exists whether or not spans are exported.
//! A hop carries the current span's context to the next process: REST and AMQP as a
//! `traceparent` header ([`traceparent`], [`set_parent`]); tarpc in its own request context,
//! which tarpc fills from the current span itself. The receiving side makes its span a child of
//! it ([`set_parent`]), so the broker, the listener and the logger share the caller's trace id.
//! Without the layer (a test that installs no subscriber) nothing here fails: there is no trace.

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header a hop's trace travels in.
pub const TRACEPARENT: &str = "traceparent";

/// The W3C (Trace Context Level 2) header an answer names its trace in, for the caller.
pub const TRACERESPONSE: &str = "traceresponse";

/// The OpenTelemetry context of `span`, if it is part of a trace.
fn span_context(span: &tracing::Span) -> Option<SpanContext> {
    let context = span.context().span().span_context().clone();
    context.is_valid().then_some(context)
}

/// The trace id of `span` (32 lowercase hex digits), if it is part of a trace: hex-encoded as
/// [`traceparent`] writes it (every JSON line and stored entry asks; `u128` formatting costs
/// several times more).
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    span_context(span).map(|context| hex::encode(context.trace_id().to_bytes()))
}

/// The trace id of the current span: what a stored entry and a log line record.
pub fn current_trace_id() -> Option<String> {
    trace_id(&tracing::Span::current())
}

/// `span`'s context as a `traceparent` value, for the next hop's request or message headers.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span = context.span();
    let context = span.span_context();
    context.is_valid().then(|| traceparent_of(context))
}

/// `00-<trace id>-<span id>-<flags>`, hex-encoded into one buffer: on every answer and hop, so
/// neither the propagator's map nor `u128` formatting (several times the cost) is used.
fn traceparent_of(context: &SpanContext) -> String {
    let mut value = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let encoded = hex::encode_to_slice(context.trace_id().to_bytes(), &mut value[3..35])
        .and_then(|()| hex::encode_to_slice(context.span_id().to_bytes(), &mut value[36..52]))
        .and_then(|()| hex::encode_to_slice([context.trace_flags().to_u8()], &mut value[53..55]));
    debug_assert!(encoded.is_ok(), "the slices have the encoded lengths");
    String::from_utf8_lossy(&value).into_owned()
}

/// `span`'s context as a `traceresponse` value (the same shape as `traceparent`): the trace a
/// caller can look its request up by.
pub fn traceresponse(span: &tracing::Span) -> Option<String> {
    traceparent(span)
}

/// Makes `span` a child of the trace in `carrier`'s `traceparent` (a request's or a message's
/// headers), before the span is first entered. Without a valid one the span starts a trace of
/// its own. Returns whether it joined the caller's trace.
pub fn set_parent(span: &tracing::Span, carrier: &dyn Extractor) -> bool {
    let parent = TraceContextPropagator::new().extract(carrier);
    if !parent.span().span_context().is_valid() {
        return false;
    }
    span.set_parent(parent).is_ok()
}

/// Request headers as the propagator reads them.
pub struct HeaderExtractor<'a>(pub &'a actix_web::http::header::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

/// A `traceparent` value alone (an AMQP header read out of its table, say), as the propagator
/// reads it.
pub struct Traceparent<'a>(pub Option<&'a str>);

impl Extractor for Traceparent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if key == TRACEPARENT { self.0 } else { None }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    fn with_tracing<T>(test: impl FnOnce() -> T) -> T {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let layer =
            tracing_opentelemetry::layer().with_tracer(opentelemetry::trace::TracerProvider::tracer(&provider, "test"));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), test)
    }

    #[test]
    fn a_span_joins_the_trace_of_the_traceparent_it_is_given() {
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        with_tracing(|| {
            let span = tracing::info_span!("request");
            assert!(set_parent(&span, &Traceparent(Some(caller))));
            assert_eq!(trace_id(&span).as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
            let next = traceparent(&span).expect("a traceparent for the next hop");
            let parts: Vec<&str> = next.split('-').collect();
            assert_eq!(parts[0], "00");
            assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
            assert_ne!(parts[2], "00f067aa0ba902b7", "its own span id");
            assert_eq!(parts[3], "01", "the caller's sampling decision");
            let child = span.in_scope(|| tracing::info_span!("hop"));
            assert_eq!(trace_id(&child), trace_id(&span));
        });
    }

    #[test]
    fn a_span_without_a_valid_traceparent_starts_a_trace_of_its_own() {
        with_tracing(|| {
            for bad in
                [None, Some(""), Some("00-zz-yy-01"), Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01")]
            {
                let span = tracing::info_span!("request");
                assert!(!set_parent(&span, &Traceparent(bad)), "{bad:?}");
                let id = trace_id(&span).expect("a trace of its own");
                assert_eq!(id.len(), 32);
                assert!(id.bytes().all(|b| b.is_ascii_hexdigit()) && id != "0".repeat(32));
            }
        });
    }

    #[test]
    fn without_the_layer_there_is_no_trace_and_nothing_fails() {
        let span = tracing::info_span!("request");
        assert!(trace_id(&span).is_none() && traceparent(&span).is_none());
        assert!(!set_parent(&span, &Traceparent(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))));
    }
}
