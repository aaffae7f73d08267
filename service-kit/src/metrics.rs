//! Prometheus metrics: one recorder per process, `GET /metrics` on the service's own server,
//! and the HTTP server metrics every service has ([`record_http`]).
//!
//! Services record through the `metrics` facade, re-exported here (`counter!`, `gauge!`,
//! `histogram!`), and describe their metrics once at start-up (`describe_*!`), so that every
//! series has its `# HELP`. Names carry their unit and counters end in `_total` (Prometheus
//! naming; the HTTP ones are OpenTelemetry's semantic-convention names). Label values come from
//! fixed sets (route templates, outcomes, downstream names), never from a request: the number
//! of series stays bounded whatever callers send.
//!
//! The recorder is global to the process and installed at most once ([`handle`]): tests run
//! several services in one process, and they all share it, so a test reads a series by its
//! labels and compares values before and after, never absolute counts.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

/// `http.server.request.duration`: one observation per answered request.
pub const HTTP_REQUEST_DURATION: &str = "http_server_request_duration_seconds";
/// The count series of [`HTTP_REQUEST_DURATION`]: requests answered.
pub const HTTP_REQUEST_DURATION_COUNT: &str = "http_server_request_duration_seconds_count";
/// `http.server.active_requests`: requests being handled now.
pub const HTTP_ACTIVE_REQUESTS: &str = "http_server_active_requests";
/// The route label of a request that matched no route (the 404 fallback): one series for all
/// of them, whatever paths are tried.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Buckets of every `*_seconds` histogram: a gateway's hops take from well under a millisecond
/// (a confirmed publish on the loopback) to seconds (bcrypt at cost 12, a timeout).
pub const DURATION_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Buckets of every `*_batch_size` histogram (entries per write): powers of two.
pub const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// How often histograms are drained into their buckets when nobody scrapes: without it an
/// unscraped service would keep every observation in memory.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process's recorder, installed on first use. If another recorder was installed first
/// (not ours: nothing here installs one), ours still renders what is recorded through it,
/// i.e. nothing, and says so in the log.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(Matcher::Suffix("_batch_size".into()), BATCH_SIZE_BUCKETS)
            })
            .expect("the bucket lists are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(error) = metrics::set_global_recorder(recorder) {
            tracing::warn!(%error, "another metrics recorder is installed; /metrics shows nothing");
        }
        let upkeep = handle.clone();
        // A plain thread: the recorder outlives any one runtime (tests start and stop many).
        let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the metrics upkeep thread; histograms are drained only when scraped");
        }
        describe_http();
        handle.clone()
    })
}

fn describe_http() {
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "Duration of HTTP server requests, by method, route template and status."
    );
    describe_gauge!(HTTP_ACTIVE_REQUESTS, "HTTP server requests being handled now.");
}

/// `GET /metrics`: the Prometheus text exposition format.
pub async fn render() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(handle().render())
}

/// Middleware on every service, outermost, so that it sees the status the client gets:
/// [`HTTP_REQUEST_DURATION`] by method, route template (`req.match_pattern()`, never the path)
/// and status, and [`HTTP_ACTIVE_REQUESTS`]. A request whose client goes away is not observed
/// (there is no status), but leaves the gauge all the same.
pub async fn record_http(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request.match_pattern().unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    let _active = Active::enter();
    let outcome = next.call(request).await;
    let status = match &outcome {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    histogram!(HTTP_REQUEST_DURATION, "http_request_method" => method, "http_route" => route,
        "http_response_status_code" => status_label(status))
    .record(started.elapsed());
    outcome
}

/// One request in [`HTTP_ACTIVE_REQUESTS`]; leaves it when dropped, answered or not.
struct Active;

impl Active {
    fn enter() -> Self {
        gauge!(HTTP_ACTIVE_REQUESTS).increment(1.0);
        Active
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        gauge!(HTTP_ACTIVE_REQUESTS).decrement(1.0);
    }
}

/// A status code as a label value: three digits, borrowed from a static table for the codes
/// 100-599 (every one a server answers), so that recording it allocates nothing.
fn status_label(status: actix_web::http::StatusCode) -> metrics::SharedString {
    static LABELS: OnceLock<Vec<String>> = OnceLock::new();
    let labels = LABELS.get_or_init(|| (100..600).map(|code| code.to_string()).collect());
    match labels.get(usize::from(status.as_u16()).wrapping_sub(100)) {
        Some(label) => metrics::SharedString::from(label.as_str()),
        None => metrics::SharedString::from(status.as_str().to_owned()),
    }
}

/// The method, or `_OTHER` for one outside the standard set (OpenTelemetry's rule): a client
/// may send any token as a method.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_outside_the_standard_set_is_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "_OTHER");
    }
}
