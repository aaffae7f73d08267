//! One trace across processes, end to end: an `event`'s log lines in the caller's trace in the
//! broker, the listener and the logger (the last test); and span export over OTLP: the broker and the logger run as processes of the test's
//! own (their built binaries, each on free ports, the logger on a MongoDB database of the test's
//! own; no stack needed), exporting to an OTLP/HTTP receiver inside the test
//! ([`OtlpReceiver`]). One `log` action sent with a `traceparent` gives spans from both services
//! in the caller's trace, linked parent to child across the tarpc hop; without an endpoint, or
//! with tracing disabled, nothing is sent; a collector that is down or hung never slows a request.
//!
//! The binaries are `target/release` or `target/debug`'s, whichever was built last
//! (`project/test.sh` builds the release ones before the system tests); `TEST_BIN_DIR` names
//! another directory. The batch processor exports every 5 s: the tests that check spans stop
//! the processes (SIGTERM), which flushes them, so the spans are there when the processes are gone.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use service_kit::telemetry::{OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SDK_DISABLED};
use service_kit::testing::otlp::SpanKind;
use service_kit::testing::{
    self, Answer, ChildServer, OtlpReceiver, ReceivedSpan, TestMongo, closed_port, eventually, free_port,
};
use service_kit::wiring;

/// Where the broker and logger binaries are (default: the newer of target/release, target/debug).
const TEST_BIN_DIR: &str = "TEST_BIN_DIR";
/// How long a process may take to listen.
const START: Duration = Duration::from_secs(30);
/// How long a process may take to drain, flush and exit after SIGTERM (an export may take its
/// 5 s timeout).
const STOP: Duration = Duration::from_secs(20);
/// How long a `log` action may take with the logger up: well below the exporter's 5 s timeout,
/// so an answer that waited for an export would miss it.
const ANSWER_BOUND: Duration = Duration::from_secs(2);
/// How long the first export may take to reach a receiver with a short schedule.
const EXPORT_PATIENCE: Duration = Duration::from_secs(15);
/// The batch processor's schedule (the SDK's `OTEL_BSP_SCHEDULE_DELAY`, ms) where a test needs
/// exports to happen while requests go through.
const SHORT_SCHEDULE_MS: &str = "50";
/// The trace and span of the caller, as its `traceparent` names them.
const CALLER_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN_ID: &str = "b7ad6b7169203331";

/// A built binary of the workspace.
fn binary(name: &str) -> PathBuf {
    let candidates: Vec<PathBuf> = match std::env::var_os(TEST_BIN_DIR) {
        Some(dir) => vec![PathBuf::from(dir).join(name)],
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
            vec![target.join("release").join(name), target.join("debug").join(name)]
        }
    };
    let built = |path: &PathBuf| std::fs::metadata(path).and_then(|meta| meta.modified()).ok();
    candidates.iter().filter(|path| built(path).is_some()).max_by_key(|path| built(path)).cloned().unwrap_or_else(
        || panic!("no {name} binary in {candidates:?}: `cargo build -p broker -p logger` (or --release) first"),
    )
}

/// `binary` with the settings `vars`, and none of the test's own `OTEL_*` variables.
fn command(name: &str, vars: &[(&str, String)]) -> Command {
    let mut command = Command::new(binary(name));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("OTEL_") {
            command.env_remove(key);
        }
    }
    command.env("HOST", wiring::LOCAL_HOST).env("LOG_FORMAT", "json").env("RUST_LOG", "info");
    command.envs(vars.iter().map(|(key, value)| (key, value)));
    command
}

/// The broker in front of a logger, both exporting as `otel` says.
struct System {
    // Dropped in this order: the broker (the logger's client) first, the database last.
    broker: ChildServer,
    logger: ChildServer,
    broker_url: String,
    http: reqwest::Client,
    _mongo: TestMongo,
}

impl System {
    async fn start(otel: &[(&str, &str)]) -> Self {
        let otel: Vec<(&str, String)> = otel.iter().map(|&(key, value)| (key, value.to_owned())).collect();
        let mongo = TestMongo::new();
        let (logger_port, rpc_port, broker_port) = (free_port(), free_port(), free_port());
        let mut logger_vars = vec![
            ("PORT", logger_port.to_string()),
            ("RPC_PORT", rpc_port.to_string()),
            ("MONGO_URL", mongo.url.clone()),
            ("MONGO_DB", mongo.name.clone()),
        ];
        logger_vars.extend(otel.iter().cloned());
        let logger =
            ChildServer::start("the logger", command("logger", &logger_vars), &[logger_port, rpc_port], START).await;
        // Only the logger is needed by a `log` action: the other downstreams are down.
        let down = format!("http://{}:{}", wiring::LOCAL_HOST, closed_port());
        let mut broker_vars = vec![
            ("PORT", broker_port.to_string()),
            ("LOGGER_RPC_ADDR", format!("{}:{rpc_port}", wiring::LOCAL_HOST)),
            ("AUTH_URL", down.clone()),
            ("MAILER_URL", down),
            ("RABBIT_URL", format!("amqp://guest:guest@{}:{}/%2f", wiring::LOCAL_HOST, closed_port())),
        ];
        broker_vars.extend(otel);
        let broker = ChildServer::start("the broker", command("broker", &broker_vars), &[broker_port], START).await;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
        let broker_url = format!("http://{}:{broker_port}", wiring::LOCAL_HOST);
        Self { broker, logger, broker_url, http, _mongo: mongo }
    }

    /// One `log` action, with `traceparent` when given; asserts it was logged.
    async fn log(&self, traceparent: Option<&str>) -> Answer {
        let mut request = self
            .http
            .post(format!("{}/handle", self.broker_url))
            .json(&json!({"action": "log", "log": {"name": testing::unique_name("otlp"), "data": "traced"}}));
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        let answer = Answer::read(request.send().await.expect("the broker answers")).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        answer
    }

    /// A `log` action, timed: it must be answered within [`ANSWER_BOUND`].
    async fn log_within_bound(&self, why: &str) {
        let started = Instant::now();
        self.log(None).await;
        let took = started.elapsed();
        assert!(took < ANSWER_BOUND, "{why}: a log action took {took:?}");
    }

    /// Stops both (the broker first: the logger's client), as a supervisor does; each has
    /// exported what it had when this returns.
    async fn stop(self) {
        let Self { broker, logger, _mongo, .. } = self;
        for (what, server) in [("the broker", broker), ("the logger", logger)] {
            let status = server.terminate(STOP).await;
            assert!(status.success(), "{what} exits cleanly on SIGTERM: {status}");
        }
    }
}

fn caller_traceparent() -> String {
    format!("00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01")
}

fn summaries(spans: &[&ReceivedSpan]) -> String {
    spans.iter().map(|span| span.summary()).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn one_log_action_is_one_trace_from_the_caller_through_the_broker_to_the_logger() {
    let receiver = OtlpReceiver::start();
    let system = System::start(&[(OTEL_EXPORTER_OTLP_ENDPOINT, receiver.endpoint())]).await;

    let answer = system.log(Some(&caller_traceparent())).await;
    let traceresponse = answer.header("traceresponse").expect("a traceresponse").to_owned();
    assert!(traceresponse.starts_with(&format!("00-{CALLER_TRACE_ID}-")), "{traceresponse}");
    // SIGTERM flushes the batch processor's queue: no waiting for its 5 s schedule.
    system.stop().await;

    let spans = receiver.spans();
    let all: Vec<&ReceivedSpan> = spans.iter().collect();
    let ours: Vec<&ReceivedSpan> = spans.iter().filter(|span| span.trace_id == CALLER_TRACE_ID).collect();
    let of = |service: &str| ours.iter().copied().filter(|span| span.service == service).collect::<Vec<_>>();
    let (broker, logger) = (of("broker"), of("logger"));
    assert!(
        !broker.is_empty() && !logger.is_empty(),
        "spans of both services in the caller's trace:\n{}",
        summaries(&all)
    );

    // The broker's request span continues the caller's span.
    let roots: Vec<&ReceivedSpan> =
        ours.iter().copied().filter(|span| span.parent_span_id.as_deref() == Some(CALLER_SPAN_ID)).collect();
    assert_eq!(roots.len(), 1, "one span is the caller's child:\n{}", summaries(&ours));
    assert_eq!((roots[0].service.as_str(), roots[0].kind), ("broker", SpanKind::Server), "{}", roots[0].summary());
    assert_eq!(traceresponse, format!("00-{CALLER_TRACE_ID}-{}-01", roots[0].span_id), "it names the broker's span");

    // The logger's RPC server span is the child of the broker's RPC client span.
    let server = logger.iter().find(|span| span.kind == SpanKind::Server).expect("the logger's RPC server span");
    let parent = broker
        .iter()
        .find(|span| Some(&span.span_id) == server.parent_span_id.as_ref())
        .unwrap_or_else(|| panic!("its parent is a broker span: {}\n{}", server.summary(), summaries(&ours)));
    assert_eq!(parent.kind, SpanKind::Client, "the broker's side of the hop: {}", parent.summary());

    // One tree: every span's parent is the caller's span or a span of the trace.
    for span in &ours {
        let parent = span.parent_span_id.as_deref().expect("no span of the request starts a trace");
        assert!(
            parent == CALLER_SPAN_ID || ours.iter().any(|other| other.span_id == parent),
            "{} has a parent the trace does not hold:\n{}",
            span.summary(),
            summaries(&ours)
        );
    }
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_exported() {
    // The signal's own variable, which an exporter built without an endpoint would read: ours
    // is built only with OTEL_EXPORTER_OTLP_ENDPOINT.
    let receiver = OtlpReceiver::start();
    let traces_endpoint = format!("{}/v1/traces", receiver.endpoint());
    let system = System::start(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &traces_endpoint)]).await;

    let answer = system.log(Some(&caller_traceparent())).await;
    assert!(
        answer.header("traceresponse").is_some_and(|value| value.contains(CALLER_TRACE_ID)),
        "traces still propagate"
    );
    for (what, server) in [("the broker", &system.broker), ("the logger", &system.logger)] {
        // Its log writer thread may not have written the line yet.
        eventually(&format!("{what} to say it exports nowhere"), START, || {
            std::future::ready(server.output().contains(r#""otlp_endpoint":"none""#).then_some(()))
        })
        .await;
    }
    system.stop().await;

    assert_eq!(receiver.received().requests, 0, "nothing was sent, not even when the processes stopped");
}

#[tokio::test]
async fn with_tracing_disabled_nothing_is_exported_even_with_an_endpoint() {
    let receiver = OtlpReceiver::start();
    let system =
        System::start(&[(OTEL_EXPORTER_OTLP_ENDPOINT, receiver.endpoint()), (OTEL_SDK_DISABLED, "true")]).await;

    let answer = system.log(Some(&caller_traceparent())).await;
    assert_eq!(answer.header("traceresponse"), None, "no trace at all");
    system.stop().await;

    assert_eq!(receiver.received().requests, 0);
}

#[tokio::test]
async fn a_collector_that_is_down_never_slows_or_fails_a_request() {
    let down = format!("http://{}:{}", wiring::LOCAL_HOST, closed_port());
    let system =
        System::start(&[(OTEL_EXPORTER_OTLP_ENDPOINT, &down), ("OTEL_BSP_SCHEDULE_DELAY", SHORT_SCHEDULE_MS)]).await;
    // The first request connects the broker to the logger: not timed.
    system.log(None).await;
    for _ in 0..5 {
        system.log_within_bound("exports failing every 50 ms").await;
    }
    system.stop().await;
}

#[tokio::test]
async fn a_collector_that_hangs_never_slows_or_fails_a_request() {
    let receiver = OtlpReceiver::start_stalled();
    let system = System::start(&[
        (OTEL_EXPORTER_OTLP_ENDPOINT, receiver.endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY", SHORT_SCHEDULE_MS),
    ])
    .await;
    system.log(None).await;
    // An export is now held (for the exporter's 5 s timeout): requests go on meanwhile.
    receiver.wait_for_requests(1, EXPORT_PATIENCE).await;
    for _ in 0..5 {
        system.log_within_bound("an export hanging").await;
    }
    // Not stopped: the broker would spend the export timeout on its way out; dropping kills it.
}

/// The JSON lines in `output` that carry `trace_id`.
fn lines_in_trace(output: &str, trace_id: &str) -> Vec<serde_json::Value> {
    output
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["trace_id"] == trace_id)
        .collect()
}

/// One `event` action sent with a `traceparent`: the broker publishes it, the listener consumes
/// it and the logger stores it, and each of the three writes its log lines for it in the
/// caller's trace (at `debug`, the level of their per-request lines); the answer's
/// `Server-Timing` names the publish hop and the stored entry carries the trace id.
#[tokio::test]
async fn an_event_is_logged_in_the_callers_trace_by_the_broker_the_listener_and_the_logger() {
    let mongo = TestMongo::new();
    let (exchange, queue) = (testing::unique_name("trace-ex"), testing::unique_name("trace-q"));
    let (logger_port, rpc_port, listener_port, broker_port) = (free_port(), free_port(), free_port(), free_port());
    let rpc = format!("{}:{rpc_port}", wiring::LOCAL_HOST);
    let logger_vars = [
        ("PORT", logger_port.to_string()),
        ("RPC_PORT", rpc_port.to_string()),
        ("MONGO_URL", mongo.url.clone()),
        ("MONGO_DB", mongo.name.clone()),
        ("RUST_LOG", "info,logger=debug".to_owned()),
    ];
    let logger =
        ChildServer::start("the logger", command("logger", &logger_vars), &[logger_port, rpc_port], START).await;
    let listener_vars = [
        ("PORT", listener_port.to_string()),
        ("LOGGER_RPC_ADDR", rpc.clone()),
        ("EXCHANGE", exchange.clone()),
        ("QUEUE_NAME", queue.clone()),
        ("RUST_LOG", "info,listener=debug".to_owned()),
    ];
    let listener =
        ChildServer::start("the listener", command("listener", &listener_vars), &[listener_port], START).await;
    let down = format!("http://{}:{}", wiring::LOCAL_HOST, closed_port());
    let broker_vars = [
        ("PORT", broker_port.to_string()),
        ("LOGGER_RPC_ADDR", rpc),
        ("AUTH_URL", down.clone()),
        ("MAILER_URL", down),
        ("EXCHANGE", exchange.clone()),
        ("QUEUE_NAME", queue.clone()),
        ("RUST_LOG", "info,broker=debug".to_owned()),
    ];
    let broker = ChildServer::start("the broker", command("broker", &broker_vars), &[broker_port], START).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
    // The listener's queue exists once its consumer is up: before that a publish would be dropped.
    let ready = format!("http://{}:{listener_port}/ready", wiring::LOCAL_HOST);
    eventually("the listener's consumer", START, || async {
        http.get(&ready).send().await.ok().filter(|answer| answer.status().is_success())
    })
    .await;

    let name = testing::unique_name("traced-event");
    let answer = http
        .post(format!("http://{}:{broker_port}/handle", wiring::LOCAL_HOST))
        .header("traceparent", caller_traceparent())
        .json(&json!({"action": "event", "log": {"name": name, "data": "one trace"}}))
        .send()
        .await
        .expect("the broker answers");
    let answer = Answer::read(answer).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let timing = answer.header("server-timing").expect("a Server-Timing header").to_owned();
    assert!(timing.contains("event;dur="), "the publish hop is named: {timing}");

    let entry = eventually("the stored entry", Duration::from_secs(30), || async {
        testing::stored_logs(&mongo.database().await, mongodb::bson::doc! { "name": &name }).await.pop()
    })
    .await;
    assert_eq!(entry.get_str("trace_id"), Ok(CALLER_TRACE_ID), "{entry}");
    for (what, server, message) in
        [("broker", &broker, "event published"), ("listener", &listener, "stored"), ("logger", &logger, "entry stored")]
    {
        let lines = eventually(&format!("the {what}'s line in the trace"), Duration::from_secs(10), || async {
            let lines = lines_in_trace(&server.output(), CALLER_TRACE_ID);
            lines.iter().any(|line| line["message"] == message).then_some(lines)
        })
        .await;
        assert!(!lines.is_empty(), "{what}: {lines:?}");
    }
    // The processes first: a listener would declare its queue again.
    drop((broker, listener, logger));
    testing::delete_topology(&exchange, &queue).await;
}
