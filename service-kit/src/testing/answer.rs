//! [`Answer`]: the one way tests read an HTTP response of ours, whole.

use contract::Envelope;
use reqwest::header::HeaderMap;

/// A response read whole: its status, headers, body as sent and body as JSON.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body as it came, for checks on the exact bytes.
    pub text: String,
    pub body: serde_json::Value,
}

impl Answer {
    /// Reads `response`; panics, showing the body, when it is not JSON.
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let body =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("answered {status}, not JSON ({e}): {text:?}"));
        Self { status, headers, text, body }
    }

    /// The body as the one envelope (`error` a bool, `message` a string); panics, showing the
    /// body, when it is not one.
    pub fn envelope(&self) -> Envelope {
        serde_json::from_value(self.body.clone())
            .unwrap_or_else(|e| panic!("answered {}, not an envelope ({e}): {}", self.status, self.text))
    }

    /// The status and the envelope, for `let (status, body) = ...` in a test.
    pub fn status_and_envelope(&self) -> (u16, Envelope) {
        (self.status, self.envelope())
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_else(|| panic!("no message in {}", self.body))
    }

    /// A header's value as text (`None` when absent or not text).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The headers every answer of every service carries (`http::security_headers`); `why`
    /// names the answer. A page may have its own, stricter CSP: it must still refuse framing.
    pub fn assert_security_headers(&self, why: &str) {
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"), "{why}: {:?}", self.headers);
        assert_eq!(self.header("x-frame-options"), Some("DENY"), "{why}: {:?}", self.headers);
        let policy = self.header("content-security-policy").unwrap_or_default();
        assert!(policy.contains("frame-ancestors 'none'"), "{why}: CSP {policy:?}");
    }

    /// The envelope of a failure: this status, `error` true and a message containing `message_part`.
    pub fn assert_error(&self, status: u16, message_part: &str, why: &str) {
        assert_eq!(self.status, status, "{why}: {}", self.body);
        assert_eq!(self.body["error"], true, "{why}: {}", self.body);
        assert!(self.message().contains(message_part), "{why}: {:?} should contain {message_part:?}", self.message());
    }
}
