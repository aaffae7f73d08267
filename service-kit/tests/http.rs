//! The plumbing every service shares, exercised through a real server on port 0.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;
use service_kit::server::{HttpService, bind};
use service_kit::testing::raw::MARGIN;
use service_kit::testing::{Answer, assert_short_body_refused, send_raw};
use service_kit::{HttpSettings, Readiness};

#[derive(serde::Deserialize)]
struct Echo {
    name: String,
}

async fn echo(body: web::Json<Echo>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"error": false, "message": body.name}))
}

async fn spawn(readiness: Readiness, cors: Vec<String>) -> String {
    spawn_with(HttpSettings::ephemeral(), readiness, cors).await
}

async fn spawn_with(settings: HttpSettings, readiness: Readiness, cors: Vec<String>) -> String {
    let (listener, port) = bind(&settings).unwrap();
    let server = HttpService::new(&settings, readiness)
        .cors(cors)
        .workers(1)
        .run(listener, (), |cfg: &mut web::ServiceConfig, _: web::Data<()>| {
            cfg.service(web::resource("/echo").route(web::post().to(echo)));
        })
        .unwrap();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn health_answers_and_ready_reports_each_dependency() {
    let ready = spawn(Readiness::new().check("db", || async { Ok(()) }), vec![]).await;
    let Answer { status, body: envelope, .. } =
        Answer::read(reqwest::get(format!("{ready}/health")).await.unwrap()).await;
    assert_eq!((status, envelope), (200, json!({"error": false, "message": "ok"})));
    let Answer { status, body: envelope, .. } =
        Answer::read(reqwest::get(format!("{ready}/ready")).await.unwrap()).await;
    assert_eq!((status, envelope), (200, json!({"error": false, "message": "ready", "data": {"db": "ok"}})));

    let not_ready = spawn(
        Readiness::new().check("db", || async { Ok(()) }).check("smtp", || async { Err("connection refused".into()) }),
        vec![],
    )
    .await;
    let Answer { status, body: envelope, .. } =
        Answer::read(reqwest::get(format!("{not_ready}/ready")).await.unwrap()).await;
    assert_eq!(status, 503);
    assert_eq!(envelope["data"], json!({"db": "ok", "smtp": "connection refused"}));

    // A failed report is shown and does not make the service unready.
    let degraded = spawn(
        Readiness::new().check("db", || async { Ok(()) }).report("queue", || async { Err("reconnecting".into()) }),
        vec![],
    )
    .await;
    let Answer { status, body: envelope, .. } =
        Answer::read(reqwest::get(format!("{degraded}/ready")).await.unwrap()).await;
    assert_eq!((status, &envelope["data"]), (200, &json!({"db": "ok", "queue": "reconnecting"})), "{envelope}");
}

#[tokio::test]
async fn bad_bodies_get_the_right_status_in_the_envelope() {
    let base = spawn(Readiness::new(), vec![]).await;
    let client = reqwest::Client::new();
    let cases: [(&str, &str, Vec<u8>, u16, &str); 5] = [
        ("malformed JSON", "application/json", b"{nope".to_vec(), 400, "not valid JSON"),
        ("missing field", "application/json", b"{}".to_vec(), 400, "missing field `name`"),
        ("wrong type", "application/json", br#"{"name": 1}"#.to_vec(), 400, "invalid type"),
        ("not JSON content", "text/plain", br#"{"name":"x"}"#.to_vec(), 415, "Content-Type"),
        ("over 1 MiB", "application/json", vec![b' '; 1024 * 1024 + 1], 413, "larger than"),
    ];
    for (why, content_type, payload, expected_status, expected_message) in cases {
        let response = client
            .post(format!("{base}/echo"))
            .header("content-type", content_type)
            .body(payload)
            .send()
            .await
            .unwrap();
        let Answer { status, body: envelope, .. } = Answer::read(response).await;
        assert_eq!(status, expected_status, "{why}");
        assert_eq!(envelope["error"], true, "{why}");
        let message = envelope["message"].as_str().unwrap();
        assert!(message.contains(expected_message), "{why}: {message}");
    }
}

#[tokio::test]
async fn unknown_routes_get_a_404_envelope() {
    let base = spawn(Readiness::new(), vec![]).await;
    let Answer { status, body: envelope, .. } = Answer::read(reqwest::get(format!("{base}/nope")).await.unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(envelope, json!({"error": true, "message": r#"no route for GET "/nope""#}));
    let long = format!("/{}", "p".repeat(10_000));
    let answer = Answer::read(reqwest::get(format!("{base}{long}")).await.unwrap()).await;
    assert_eq!(answer.status, 404);
    assert!(answer.message().len() < 200, "the path is quoted short: {}", answer.message());
    assert!(answer.message().ends_with("... (10001 bytes)"), "{}", answer.message());
}

/// Every answer carries the security headers, whatever produced it, and every refusal the
/// service can shape is in the envelope: 405 with `Allow`, a foreign host, a CORS refusal.
#[tokio::test]
async fn every_answer_has_the_security_headers_and_every_refusal_the_envelope() {
    let base = spawn(Readiness::new(), vec!["http://localhost:8081".into()]).await;
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{base}{path}"));
    let post = |path: &str| client.post(format!("{base}{path}"));
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        ("a success", get("/health"), 200, "ok"),
        ("a 404", get("/nope"), 404, "no route for GET"),
        ("a bad body", post("/echo").header("content-type", "application/json").body("{"), 400, "not valid JSON"),
        ("an undeclared method", get("/echo"), 405, "method not allowed here; allowed: POST"),
        ("PUT", client.put(format!("{base}/echo")), 405, "allowed: POST"),
        ("TRACE", client.request(reqwest::Method::TRACE, format!("{base}/echo")), 405, "allowed: POST"),
        ("a foreign host", post("/echo").header("host", "evil.example"), 400, r#"host "evil.example" is not allowed"#),
        ("a foreign host with a port", get("/nope").header("host", "evil.example:8080"), 400, "evil.example:8080"),
        (
            "a CORS refusal (a preflight from another origin)",
            client
                .request(reqwest::Method::OPTIONS, format!("{base}/echo"))
                .header("origin", "http://evil.example")
                .header("access-control-request-method", "POST"),
            400,
            "not allowed",
        ),
        ("any host may probe /health", get("/health").header("host", "10.1.2.3:8080"), 200, "ok"),
        ("any host may probe /ready", get("/ready").header("host", "10.1.2.3"), 200, "ready"),
        ("the loopback by name", post("/echo").header("host", "localhost:1").json(&json!({"name": "x"})), 200, "x"),
        ("IPv6 loopback", post("/echo").header("host", "[::1]:80").json(&json!({"name": "y"})), 200, "y"),
        ("a compose name", post("/echo").header("host", "broker:8080").json(&json!({"name": "z"})), 200, "z"),
    ];
    for (why, request, status, message) in cases {
        let answer = Answer::read(request.send().await.unwrap()).await;
        assert_eq!(answer.status, status, "{why}: {}", answer.text);
        assert_eq!(answer.envelope().error, status >= 400, "{why}");
        assert!(answer.message().contains(message), "{why}: {:?} should contain {message:?}", answer.message());
        answer.assert_security_headers(why);
        if status == 405 {
            assert_eq!(answer.header("allow"), Some("POST"), "{why}");
        }
    }
}

#[tokio::test]
async fn allowed_hosts_star_answers_any_host() {
    let settings = HttpSettings { allowed_hosts: vec!["*".into()], ..HttpSettings::ephemeral() };
    let base = spawn_with(settings, Readiness::new(), vec![]).await;
    let answer =
        Answer::read(reqwest::Client::new().get(format!("{base}/nope")).header("host", "x").send().await.unwrap())
            .await;
    assert_eq!(answer.status, 404, "{}", answer.text);
}

/// What actix answers before any of our code runs stays bare: a header section over its limit
/// (more than 96 headers, or over its 128 KiB buffer) gets 431 with no body. If a new actix lets
/// us shape it, this fails, and the answer can get the envelope (`http::envelope_refusals`).
#[tokio::test]
async fn a_header_section_actix_refuses_stays_bare() {
    let base = spawn(Readiness::new(), vec![]).await;
    let headers: String = (0..100).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
    let head = format!("GET /health HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n");
    let answer = send_raw(&base, &head, &[], Duration::ZERO, MARGIN * 2).await;
    assert_eq!((answer.status, &answer.body), (431, &serde_json::Value::Null), "{answer:?}");
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let base = spawn(Readiness::new(), vec!["http://localhost:8081".into()]).await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, format!("{base}/echo"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("http://localhost:8081").await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["access-control-allow-origin"], "http://localhost:8081");
    let refused = preflight("http://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());
}

/// A server whose requests must arrive within `body_timeout`.
async fn spawn_bounded(body_timeout: Duration) -> String {
    spawn_with(HttpSettings { body_timeout, ..HttpSettings::ephemeral() }, Readiness::new(), vec![]).await
}

#[tokio::test]
async fn a_body_short_of_its_content_length_gets_a_408_envelope_and_the_connection_closed() {
    let bound = Duration::from_millis(300);
    let base = spawn_bounded(bound).await;
    assert_short_body_refused(&base, "/echo", bound).await;
}

#[tokio::test]
async fn a_slow_body_that_arrives_within_the_bound_is_served() {
    let bound = Duration::from_millis(1500);
    let base = spawn_bounded(bound).await;
    let body: &[u8] = br#"{"name": "slow"}"#;
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // Four pieces 100 ms apart: 300 ms of trickle, a fifth of the bound.
    let pieces: Vec<&[u8]> = body.chunks(body.len().div_ceil(4)).collect();
    let answer = send_raw(&base, &head, &pieces, Duration::from_millis(100), MARGIN).await;
    assert_eq!((answer.status, answer.body), (200, json!({"error": false, "message": "slow"})));
}

#[tokio::test]
async fn a_stalled_header_section_is_answered_408_and_closed_within_the_bound() {
    let bound = Duration::from_millis(300);
    let base = spawn_bounded(bound).await;
    let answer =
        send_raw(&base, "POST /echo HTTP/1.1\r\nHost: localhost\r\n", &[], Duration::ZERO, bound + MARGIN).await;
    assert_eq!(answer.status, 408, "{answer:?}");
    // actix's own answer, before any app code: bare (see `http::envelope_refusals`).
    assert_eq!(answer.body, serde_json::Value::Null, "{answer:?}");
    assert!(answer.answered <= bound * 2, "answered after {:?}, twice the bound", answer.answered);
    eprintln!("stalled head: 408 after {:?}, closed after {:?} (bound {bound:?})", answer.answered, answer.closed);
}
