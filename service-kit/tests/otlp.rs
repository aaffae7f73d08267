//! The tests' OTLP receiver against the exporter the services use (opentelemetry-otlp over
//! HTTP/protobuf, as `telemetry::init` builds it): what is exported arrives decoded.

use std::io::Write as _;
use std::time::Duration;

use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use prost::Message as _;
use service_kit::testing::OtlpReceiver;
use service_kit::testing::otlp::{SpanKind, TRACES_PATH};

const PATIENCE: Duration = Duration::from_secs(10);

/// A provider exporting to `endpoint` as a service's does, named `service`.
fn provider(service: &str, endpoint: &str) -> SdkTracerProvider {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(format!("{endpoint}{TRACES_PATH}"))
        .build()
        .expect("an OTLP exporter");
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service.to_owned()).build();
    SdkTracerProvider::builder().with_resource(resource).with_batch_exporter(exporter).build()
}

#[tokio::test]
async fn exported_spans_arrive_with_their_service_ids_parent_kind_and_attributes() {
    let receiver = OtlpReceiver::start();
    let endpoint = receiver.endpoint().to_owned();
    // The exporter's blocking client and the flush block their thread: not the test's runtime,
    // which serves the receiver.
    let (trace_id, root_id, child_id) = tokio::task::spawn_blocking(move || {
        let provider = provider("otlp-test", &endpoint);
        let tracer = provider.tracer("test");
        let root = tracer
            .span_builder("HTTP request")
            .with_kind(opentelemetry::trace::SpanKind::Server)
            .with_attributes([KeyValue::new("http.route", "/handle"), KeyValue::new("http.status_code", 202)])
            .start(&tracer);
        let context = Context::current_with_span(root);
        let mut child = tracer
            .span_builder("write")
            .with_kind(opentelemetry::trace::SpanKind::Client)
            .start_with_context(&tracer, &context);
        let ids = (
            context.span().span_context().trace_id().to_string(),
            context.span().span_context().span_id().to_string(),
            child.span_context().span_id().to_string(),
        );
        child.end();
        context.span().end();
        provider.force_flush().expect("the spans are exported");
        ids
    })
    .await
    .unwrap();

    let spans = receiver.wait_for_spans("both spans", PATIENCE, |spans| spans.len() >= 2).await;
    let root = spans.iter().find(|span| span.span_id == root_id).expect("the root span");
    let child = spans.iter().find(|span| span.span_id == child_id).expect("the child span");
    assert_eq!((root.service.as_str(), child.service.as_str()), ("otlp-test", "otlp-test"));
    assert_eq!((root.name.as_str(), root.kind), ("HTTP request", SpanKind::Server));
    assert_eq!((child.name.as_str(), child.kind), ("write", SpanKind::Client));
    assert_eq!((root.trace_id.as_str(), child.trace_id.as_str()), (trace_id.as_str(), trace_id.as_str()));
    assert_eq!(trace_id.len(), 32, "hex, as traceparent writes it: {trace_id}");
    assert_eq!(root.parent_span_id, None);
    assert_eq!(child.parent_span_id.as_deref(), Some(root_id.as_str()));
    assert_eq!(root.attributes.get("http.route").map(String::as_str), Some("/handle"));
    assert_eq!(root.attributes.get("http.status_code").map(String::as_str), Some("202"));
    assert_eq!(receiver.received().requests, 1);
}

/// An `ExportTraceServiceRequest` of one span with no resource, encoded.
fn one_span_request(name: &str) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let span = Span { name: name.to_owned(), trace_id: vec![1; 16], span_id: vec![2; 8], ..Default::default() };
    let scope = ScopeSpans { spans: vec![span], ..Default::default() };
    ExportTraceServiceRequest { resource_spans: vec![ResourceSpans { scope_spans: vec![scope], ..Default::default() }] }
        .encode_to_vec()
}

#[tokio::test]
async fn a_gzip_export_is_decoded_and_answered_with_an_empty_response() {
    let receiver = OtlpReceiver::start();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&one_span_request("compressed")).unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}{TRACES_PATH}", receiver.endpoint()))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gzip.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    assert!(response.bytes().await.unwrap().is_empty(), "an empty ExportTraceServiceResponse");

    let spans = receiver.spans();
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!((spans[0].name.as_str(), spans[0].service.as_str()), ("compressed", ""));
    assert_eq!((spans[0].trace_id.as_str(), spans[0].span_id.as_str()), ("01".repeat(16).as_str(), "0202020202020202"));
    assert_eq!((spans[0].parent_span_id.as_ref(), spans[0].kind), (None, SpanKind::Unspecified));
}

#[tokio::test]
async fn what_is_not_an_export_request_is_refused_and_counted() {
    let receiver = OtlpReceiver::start();
    let response = reqwest::Client::new()
        .post(format!("{}{TRACES_PATH}", receiver.endpoint()))
        .body(vec![0xff; 7])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let received = receiver.received();
    assert_eq!((received.requests, received.spans.len()), (1, 0));
}

#[tokio::test]
async fn a_stalled_receiver_takes_the_request_and_never_answers() {
    let receiver = OtlpReceiver::start_stalled();
    let client = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let sent = client.post(format!("{}{TRACES_PATH}", receiver.endpoint())).body(one_span_request("held")).send();
    let error = sent.await.expect_err("no answer");
    assert!(error.is_timeout(), "{error}");
    let received = receiver.wait_for_requests(1, PATIENCE).await;
    assert_eq!(received.spans.len(), 1, "what it holds is decoded all the same");
}

#[tokio::test]
#[should_panic(expected = "timed out after 100ms waiting for a span named never; 0 export requests")]
async fn waiting_for_spans_that_never_come_fails_at_the_deadline() {
    let receiver = OtlpReceiver::start();
    receiver
        .wait_for_spans("a span named never", Duration::from_millis(100), |spans| {
            spans.iter().any(|span| span.name == "never")
        })
        .await;
}
