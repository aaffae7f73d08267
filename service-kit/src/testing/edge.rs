//! [`assert_edge_answers`]: what every service answers at its edge, whatever its routes: the
//! security headers on every answer, the envelope on every refusal it can shape (404, 405 with
//! `Allow`, a foreign `Host`), and `/health`, `/ready` and `/metrics` (which `promtool check
//! metrics` accepts) for any `Host` (probes and Prometheus use the pod IP).

use std::time::Duration;

use super::Answer;

/// A path of the service and a method it does not declare there, with the `Allow` it answers.
pub struct Undeclared<'a> {
    pub method: reqwest::Method,
    pub path: &'a str,
    pub allow: &'a str,
}

/// Checks the edge of the service at `base_url` (`http://127.0.0.1:<port>`).
pub async fn assert_edge_answers(base_url: &str, undeclared: Undeclared<'_>) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client");
    let read =
        |request: reqwest::RequestBuilder| async move { Answer::read(request.send().await.expect("an answer")).await };

    let health = read(client.get(format!("{base_url}/health"))).await;
    assert_eq!(health.status, 200, "{}", health.text);
    health.assert_security_headers("/health");
    let probe = read(client.get(format!("{base_url}/health")).header("host", "10.12.0.7:8080")).await;
    assert_eq!(probe.status, 200, "/health with the pod IP as Host: {}", probe.text);

    // After the /health above: the HTTP server metrics have a series; Prometheus addresses
    // the pod by its IP too.
    let metrics =
        client.get(format!("{base_url}/metrics")).header("host", "10.12.0.7:8080").send().await.expect("an answer");
    assert_eq!(metrics.status(), 200, "/metrics with the pod IP as Host");
    let metrics = super::Scrape::parse(metrics.text().await.expect("the metrics text"));
    assert!(
        metrics.value(crate::metrics::HTTP_REQUEST_DURATION_COUNT, &[("http_route", "/health")]) >= 1.0,
        "/health is counted: {}",
        metrics.text
    );
    super::assert_promtool_passes(&metrics.text);

    let missing = read(client.get(format!("{base_url}/no-such-route"))).await;
    missing.assert_error(404, r#"no route for GET "/no-such-route""#, "an unknown route");
    missing.assert_security_headers("a 404");

    let why = format!("{} {}", undeclared.method, undeclared.path);
    let not_allowed = read(client.request(undeclared.method.clone(), format!("{base_url}{}", undeclared.path))).await;
    not_allowed.assert_error(405, &format!("allowed: {}", undeclared.allow), &why);
    assert_eq!(not_allowed.header("allow"), Some(undeclared.allow), "{why}");
    not_allowed.assert_security_headers(&why);

    // Refused before routing: any path but the probes' will do.
    let foreign = read(client.get(format!("{base_url}/no-such-route")).header("host", "rebind.example:80")).await;
    foreign.assert_error(400, r#"host "rebind.example:80" is not allowed"#, "a foreign Host");
    foreign.assert_security_headers("a foreign Host");
}
