//! One trace per request: a service joins the caller's `traceparent`, names the trace in its
//! answer (`traceresponse`) and in every JSON line it writes for the request.

use actix_web::{HttpResponse, web};
use service_kit::server::{HttpService, bind};
use service_kit::testing::capture_logs;
use service_kit::{HttpSettings, Readiness};

async fn logged() -> HttpResponse {
    tracing::info!("handled inside the request");
    let inner = tracing::info_span!("inner work");
    inner.in_scope(|| tracing::warn!("deeper inside"));
    HttpResponse::Ok().json(serde_json::json!({"error": false, "message": "ok"}))
}

async fn spawn() -> String {
    let settings = HttpSettings::ephemeral();
    let (listener, port) = bind(&settings).unwrap();
    let server = HttpService::new(&settings, Readiness::new())
        .workers(1)
        .run(listener, (), |cfg: &mut web::ServiceConfig, _: web::Data<()>| {
            cfg.service(web::resource("/logged").route(web::get().to(logged)));
        })
        .unwrap();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

fn lines_with(logs: &service_kit::testing::CapturedLogs, message: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["message"] == message)
        .collect()
}

#[tokio::test]
async fn a_request_joins_the_callers_trace_and_every_line_names_it() {
    let logs = capture_logs();
    let base = spawn().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let answer = reqwest::Client::new()
        .get(format!("{base}/logged"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let traceresponse = answer.headers()["traceresponse"].to_str().unwrap().to_owned();
    let parts: Vec<&str> = traceresponse.split('-').collect();
    assert_eq!((parts.len(), parts[0], parts[1], parts[3]), (4, "00", trace_id, "01"), "{traceresponse}");
    assert_ne!(parts[2], "00f067aa0ba902b7", "the service's own span, a child of the caller's");

    for message in ["handled inside the request", "deeper inside"] {
        let lines = lines_with(&logs, message);
        assert_eq!(lines.len(), 1, "{message}: {:?}", logs.lines());
        assert_eq!(lines[0]["trace_id"], trace_id, "{}", lines[0]);
    }
}

#[tokio::test]
async fn a_request_without_a_traceparent_starts_a_trace_and_names_it() {
    let logs = capture_logs();
    let base = spawn().await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let answer = reqwest::get(format!("{base}/logged")).await.unwrap();
        let traceresponse = answer.headers()["traceresponse"].to_str().unwrap().to_owned();
        seen.push(traceresponse.split('-').nth(1).unwrap().to_owned());
    }
    assert_ne!(seen[0], seen[1], "each request is a trace of its own");
    let logged: Vec<String> = lines_with(&logs, "handled inside the request")
        .iter()
        .map(|line| line["trace_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(logged, seen);
}
