//! An OTLP/HTTP receiver of a test's own: what a service's exporter
//! ([`crate::telemetry`]) sends, decoded, with no trace backend.
//!
//! [`OtlpReceiver::start`] listens on a port of its own (port 0) and answers every
//! `POST /v1/traces` (a protobuf `ExportTraceServiceRequest`, gzip or not) with 200 and an empty
//! `ExportTraceServiceResponse`, keeping each span as a [`ReceivedSpan`]. A test points a
//! service's `OTEL_EXPORTER_OTLP_ENDPOINT` at [`OtlpReceiver::endpoint`] and waits for what it
//! expects with [`OtlpReceiver::wait_for_spans`] (woken by each export, bounded by a deadline).
//! [`OtlpReceiver::start_stalled`] is a collector that takes requests and never answers.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
pub use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use tokio::sync::watch;

use crate::wiring;

/// The path the exporter posts spans to, below its endpoint (the OTLP/HTTP specification's).
pub const TRACES_PATH: &str = "/v1/traces";

/// The largest export request taken: the batch processor's batches (512 spans by default) fit.
pub const MAX_EXPORT_BYTES: usize = 16 * 1024 * 1024;

/// The resource attribute that names the service a span comes from.
pub const SERVICE_NAME: &str = "service.name";

/// One span as it arrived, with the ids in lower-case hex as `traceparent` writes them.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// Its resource's `service.name` (empty when it has none).
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// `None` for a root span.
    pub parent_span_id: Option<String>,
    pub kind: SpanKind,
    /// Each value as text: a string as it is, any other value as its Rust form.
    pub attributes: BTreeMap<String, String>,
}

impl ReceivedSpan {
    /// One line for a failure message: service, name, kind and the ids.
    pub fn summary(&self) -> String {
        format!(
            "{} {:?} ({:?}) trace {} span {} parent {}",
            self.service,
            self.name,
            self.kind,
            self.trace_id,
            self.span_id,
            self.parent_span_id.as_deref().unwrap_or("none")
        )
    }
}

/// Everything the receiver got so far.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// Export requests, decodable or not (a stalled receiver counts the ones it holds).
    pub requests: usize,
    pub spans: Vec<ReceivedSpan>,
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answering {
    /// 200 with an empty response, as a collector does.
    Promptly,
    /// Never: the request is kept (and counted) until the receiver is dropped.
    Never,
}

struct Shared {
    received: watch::Sender<Received>,
    answering: Answering,
}

/// A running receiver; stops on drop.
pub struct OtlpReceiver {
    endpoint: String,
    shared: web::Data<Shared>,
    server: actix_web::dev::ServerHandle,
}

impl OtlpReceiver {
    /// A receiver that answers every export at once.
    pub fn start() -> Self {
        Self::spawn(Answering::Promptly)
    }

    /// A collector that is up but hung: it accepts each export request and never answers.
    pub fn start_stalled() -> Self {
        Self::spawn(Answering::Never)
    }

    /// Runs on the current tokio runtime (a test's), one worker.
    fn spawn(answering: Answering) -> Self {
        let shared = web::Data::new(Shared { received: watch::Sender::new(Received::default()), answering });
        let listener = std::net::TcpListener::bind((wiring::LOCAL_HOST, 0)).expect("bind the OTLP receiver");
        let port = listener.local_addr().expect("the bound address").port();
        let data = shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(MAX_EXPORT_BYTES))
                .route(TRACES_PATH, web::post().to(export))
        })
        .workers(1)
        .disable_signals()
        // A stalled request is not waited for when the receiver stops.
        .shutdown_timeout(0)
        .listen(listener)
        .expect("listen on the OTLP receiver's port")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { endpoint: format!("http://{}:{port}", wiring::LOCAL_HOST), shared, server: handle }
    }

    /// What `OTEL_EXPORTER_OTLP_ENDPOINT` is set to (the exporter appends [`TRACES_PATH`]).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Everything received so far.
    pub fn received(&self) -> Received {
        self.shared.received.borrow().clone()
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.shared.received.borrow().spans.clone()
    }

    /// Waits until what was received satisfies `done`, for at most `timeout`; panics then,
    /// listing what arrived. Woken by each export request, so no polling.
    pub async fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&Received) -> bool) -> Received {
        let mut changes = self.shared.received.subscribe();
        match tokio::time::timeout(timeout, changes.wait_for(|received| done(received))).await {
            Ok(Ok(received)) => received.clone(),
            // The sender lives in `self`: it cannot have closed.
            Ok(Err(_)) => unreachable!("the receiver's state outlives its waiters"),
            Err(_) => {
                let received = self.received();
                let spans: Vec<String> = received.spans.iter().map(ReceivedSpan::summary).collect();
                panic!(
                    "timed out after {timeout:?} waiting for {what}; {} export requests, spans:\n{}",
                    received.requests,
                    spans.join("\n")
                )
            }
        }
    }

    /// Waits until the spans received satisfy `done` (see [`OtlpReceiver::wait_for`]).
    pub async fn wait_for_spans(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        self.wait_for(what, timeout, |received| done(&received.spans)).await.spans
    }

    /// Waits until at least `count` export requests arrived.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> Received {
        self.wait_for(&format!("{count} export requests"), timeout, |received| received.requests >= count).await
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        // The command is sent now; the returned future only waits for the server to finish.
        drop(self.server.stop(false));
    }
}

/// `POST /v1/traces`: keeps the spans, answers an empty `ExportTraceServiceResponse`.
async fn export(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    // The payload extractor has already undone a `Content-Encoding: gzip`.
    let decoded = ExportTraceServiceRequest::decode(body);
    shared.received.send_modify(|received| {
        received.requests += 1;
        if let Ok(request) = &decoded {
            received.spans.extend(spans_of(request));
        }
    });
    if shared.answering == Answering::Never {
        std::future::pending::<()>().await;
    }
    match decoded {
        Ok(_) => HttpResponse::Ok()
            .content_type("application/x-protobuf")
            .body(ExportTraceServiceResponse::default().encode_to_vec()),
        Err(error) => HttpResponse::BadRequest().body(format!("not an ExportTraceServiceRequest: {error}")),
    }
}

/// Every span of `request`, each with its resource's service name.
fn spans_of(request: &ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut spans = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans.resource.as_ref().map(|resource| attributes_of(&resource.attributes));
        let service = resource.and_then(|mut attributes| attributes.remove(SERVICE_NAME)).unwrap_or_default();
        for span in resource_spans.scope_spans.iter().flat_map(|scope| &scope.spans) {
            spans.push(ReceivedSpan {
                service: service.clone(),
                name: span.name.clone(),
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: (!span.parent_span_id.is_empty()).then(|| hex(&span.parent_span_id)),
                kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                attributes: attributes_of(&span.attributes),
            });
        }
    }
    spans
}

fn attributes_of(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes.iter().map(|pair| (pair.key.clone(), text_of(pair.value.as_ref()))).collect()
}

fn text_of(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::DoubleValue(number)) => number.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
