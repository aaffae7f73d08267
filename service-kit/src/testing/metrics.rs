//! Reading a service's `GET /metrics` in tests: [`scrape`] parses the text format into series
//! a test looks up by name and labels ([`Scrape::value`]), and [`assert_promtool_passes`] runs
//! Prometheus's own linter on it. Every service of a test process shares one recorder
//! (`crate::metrics`), so a test compares a series before and after what it does.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The `promtool` to run (default: `promtool` on `PATH`, which `project/infra.sh tools`
/// installs from Debian's `prometheus` package).
pub const TEST_PROMTOOL: &str = "TEST_PROMTOOL";

/// One sample line: its name, labels and value.
type Sample = (String, Vec<(String, String)>, f64);

/// One scrape: the text and its samples.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub text: String,
    /// `(name, labels, value)` per sample line.
    samples: Vec<Sample>,
}

impl Scrape {
    pub fn parse(text: String) -> Self {
        let samples =
            text.lines().filter(|line| !line.starts_with('#') && !line.trim().is_empty()).filter_map(sample).collect();
        Self { text, samples }
    }

    /// The sum of the samples named `name` that carry every one of `labels` (0 when none
    /// does, as a counter not yet incremented reads).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(sample, have, _)| {
                sample == name && labels.iter().all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v))
            })
            .map(|(_, _, value)| value)
            .sum()
    }

    /// Whether any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(sample, _, _)| sample == name)
    }
}

/// `name{a="x",b="y"} 1.5` (label values here never hold quotes or commas: they are ours).
fn sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => {
            let labels = rest
                .trim_end_matches('}')
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                .collect();
            (name, labels)
        }
        None => (series, Vec::new()),
    };
    Some((name.to_owned(), labels, value))
}

/// `GET {base_url}/metrics`, which must answer 200 in the text format.
pub async fn scrape(base_url: &str) -> Scrape {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client");
    let response = client.get(format!("{base_url}/metrics")).send().await.expect("an answer from /metrics");
    assert_eq!(response.status(), 200, "GET {base_url}/metrics");
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "GET {base_url}/metrics is {content_type:?}");
    Scrape::parse(response.text().await.expect("the metrics text"))
}

/// `promtool check metrics` accepts `text` (format and naming lints: HELP on every metric,
/// `_total` on counters, base units).
pub fn assert_promtool_passes(text: &str) {
    let promtool =
        std::env::var(TEST_PROMTOOL).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| "promtool".into());
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {promtool} ({e}): `bash project/infra.sh tools` installs it (or set {TEST_PROMTOOL})")
        });
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to promtool");
    let output = child.wait_with_output().expect("promtool's answer");
    assert!(
        output.status.success(),
        "promtool check metrics: {}\n{}{}\n--- the metrics ---\n{text}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
