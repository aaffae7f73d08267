//! The one response envelope of every HTTP endpoint in the system.

use serde::{Deserialize, Serialize};

/// `{"error": bool, "message": string, "data"?: any}`, as in the Go original.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Envelope<T = serde_json::Value> {
    /// True when the request failed; the status code says how.
    pub error: bool,
    /// A sentence for humans; safe to show to a user (never a cause chain or a secret).
    pub message: String,
    /// The payload of a success, omitted when there is none (a missing `Option` field reads as
    /// `None` without `#[serde(default)]`, which would demand `T: Default`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
}

impl Envelope {
    /// A success without data.
    pub fn ok(message: impl Into<String>) -> Self {
        Self { error: false, message: message.into(), data: None }
    }

    /// A failure; its message names the problem.
    pub fn error(message: impl Into<String>) -> Self {
        Self { error: true, message: message.into(), data: None }
    }
}

impl<T> Envelope<T> {
    /// A success carrying `data`.
    pub fn with_data(message: impl Into<String>, data: T) -> Self {
        Self { error: false, message: message.into(), data: Some(data) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_is_omitted_when_absent() {
        let body = serde_json::to_value(Envelope::ok("Hit the broker")).unwrap();
        assert_eq!(body, json!({"error": false, "message": "Hit the broker"}));
    }

    #[test]
    fn data_is_included_when_present() {
        let body = serde_json::to_value(Envelope::with_data("ok", json!({"id": 1}))).unwrap();
        assert_eq!(body, json!({"error": false, "message": "ok", "data": {"id": 1}}));
    }

    #[test]
    fn a_typed_envelope_parses_without_data() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct NoDefault {
            id: u32,
        }
        let parsed: Envelope<NoDefault> = serde_json::from_str(r#"{"error":false,"message":"logged"}"#).unwrap();
        assert_eq!(parsed.data, None);
        let parsed: Envelope<NoDefault> =
            serde_json::from_str(r#"{"error":false,"message":"logged","data":{"id":7}}"#).unwrap();
        assert_eq!(parsed.data, Some(NoDefault { id: 7 }));
    }

    #[test]
    fn an_error_envelope_parses_back() {
        let parsed: Envelope = serde_json::from_str(r#"{"error":true,"message":"invalid credentials"}"#).unwrap();
        assert_eq!(parsed, Envelope::error("invalid credentials"));
    }
}
