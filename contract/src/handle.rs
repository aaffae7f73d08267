//! The broker's `POST /handle` request: `{"action": A, ...}` with the payload under a key
//! named after the action (`event` carries its payload under `log`, as in the Go original).

use serde::{Deserialize, Serialize};

use crate::auth::Credentials;
use crate::log::{DEFAULT_RECENT, LogPayload, MAX_RECENT};
use crate::mail::MailPayload;
use crate::validate::ValidationError;

/// Every action the broker handles. Dispatch is an exhaustive `match`, so a new action
/// cannot be forgotten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum HandleRequest {
    /// Check credentials with the authentication service (REST).
    Auth { auth: Credentials },
    /// Store a log entry through the logger (tarpc).
    Log { log: LogPayload },
    /// Publish a log event to RabbitMQ; the listener stores it.
    Event { log: LogPayload },
    /// Send a mail through the mailer (REST).
    Mail { mail: MailPayload },
    /// The newest log entries (tarpc).
    Logs {
        #[serde(default)]
        logs: LogsQuery,
    },
}

/// The optional payload of the `logs` action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogsQuery {
    #[serde(default)]
    pub limit: Option<u32>,
}

impl LogsQuery {
    /// The limit to ask the logger for: the default when absent, capped at [`MAX_RECENT`].
    pub fn effective_limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_RECENT).clamp(1, MAX_RECENT)
    }
}

/// Why a `/handle` body was refused, in words that name the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request body is not valid JSON: {0}")]
    Syntax(String),
    #[error("request body must be a JSON object with an \"action\" field")]
    NotAnObject,
    #[error("missing field \"action\"; expected one of {}", HandleRequest::ACTIONS.join(", "))]
    MissingAction,
    #[error("unknown action {action:?}; expected one of {expected}", action = .0, expected = HandleRequest::ACTIONS.join(", "))]
    UnknownAction(String),
    #[error("invalid {action:?} request: {detail}")]
    Payload { action: String, detail: String },
    #[error("invalid {action:?} request: {error}")]
    Invalid { action: &'static str, error: ValidationError },
}

impl HandleRequest {
    /// The action names, as they appear on the wire.
    pub const ACTIONS: [&'static str; 5] = ["auth", "log", "event", "mail", "logs"];

    /// Parses and validates a body; every refusal names the problem.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| RequestError::Syntax(e.to_string()))?;
        let action = match value.as_object() {
            None => return Err(RequestError::NotAnObject),
            Some(object) => match object.get("action") {
                None => return Err(RequestError::MissingAction),
                Some(serde_json::Value::String(action)) => action.clone(),
                Some(other) => return Err(RequestError::UnknownAction(other.to_string())),
            },
        };
        if !Self::ACTIONS.contains(&action.as_str()) {
            return Err(RequestError::UnknownAction(action));
        }
        let request: Self = serde_json::from_value(value)
            .map_err(|e| RequestError::Payload { action, detail: crate::validate::without_values(&e.to_string()) })?;
        request.validate()?;
        Ok(request)
    }

    /// The action's wire name.
    pub fn action(&self) -> &'static str {
        match self {
            HandleRequest::Auth { .. } => "auth",
            HandleRequest::Log { .. } => "log",
            HandleRequest::Event { .. } => "event",
            HandleRequest::Mail { .. } => "mail",
            HandleRequest::Logs { .. } => "logs",
        }
    }

    /// Field checks shared with the services, so nothing invalid goes downstream.
    pub fn validate(&self) -> Result<(), RequestError> {
        let result = match self {
            HandleRequest::Auth { auth } => auth.validate().map_err(|e| e.within("auth")),
            HandleRequest::Log { log } | HandleRequest::Event { log } => log.validate().map_err(|e| e.within("log")),
            HandleRequest::Mail { mail } => mail.validate().map_err(|e| e.within("mail")),
            HandleRequest::Logs { .. } => Ok(()),
        };
        result.map_err(|error| RequestError::Invalid { action: self.action(), error })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Level;

    // The Go original's bodies, byte for byte.
    #[test]
    fn the_go_originals_bodies_deserialize() {
        let auth =
            HandleRequest::parse(br#"{"action":"auth","auth":{"email":"admin@example.com","password":"verysecret"}}"#)
                .unwrap();
        assert_eq!(
            auth,
            HandleRequest::Auth {
                auth: Credentials { email: "admin@example.com".into(), password: "verysecret".into() }
            }
        );

        let log =
            HandleRequest::parse(br#"{"action":"log","log":{"name":"event","data":"Some kind of data"}}"#).unwrap();
        assert_eq!(
            log,
            HandleRequest::Log {
                log: LogPayload { name: "event".into(), data: "Some kind of data".into(), level: None }
            }
        );

        let event =
            HandleRequest::parse(br#"{"action":"event","log":{"name":"event","data":"Some kind of data"}}"#).unwrap();
        assert!(matches!(event, HandleRequest::Event { .. }));

        let mail = HandleRequest::parse(
            br#"{"action":"mail","mail":{"from":"me@example.com","to":"you@there.com","subject":"Test email","message":"Hello world!"}}"#,
        )
        .unwrap();
        assert_eq!(
            mail,
            HandleRequest::Mail {
                mail: MailPayload {
                    from: Some("me@example.com".into()),
                    to: "you@there.com".into(),
                    subject: "Test email".into(),
                    message: "Hello world!".into(),
                }
            }
        );
    }

    #[test]
    fn logs_takes_an_optional_limit_capped_at_the_maximum() {
        let HandleRequest::Logs { logs } = HandleRequest::parse(br#"{"action":"logs"}"#).unwrap() else { panic!() };
        assert_eq!(logs.effective_limit(), DEFAULT_RECENT);
        let HandleRequest::Logs { logs } =
            HandleRequest::parse(br#"{"action":"logs","logs":{"limit":100000}}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(logs.effective_limit(), MAX_RECENT);
    }

    #[test]
    fn an_event_with_a_level_keeps_it() {
        let HandleRequest::Event { log } =
            HandleRequest::parse(br#"{"action":"event","log":{"name":"n","data":"d","level":"ERROR"}}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(log.level, Some(Level::Error));
    }

    #[test]
    fn bad_bodies_fail_with_a_message_that_names_the_problem() {
        let cases: [(&str, &[u8], &str); 12] = [
            ("not JSON", b"{not json", "not valid JSON"),
            ("empty body", b"", "not valid JSON"),
            ("an array", b"[1,2]", "must be a JSON object"),
            ("no action", br#"{"auth":{}}"#, "missing field \"action\""),
            ("unknown action", br#"{"action":"dance"}"#, "unknown action \"dance\""),
            ("action not a string", br#"{"action":1}"#, "unknown action \"1\""),
            ("missing payload", br#"{"action":"auth"}"#, "missing field `auth`"),
            (
                "event payload is under log",
                br#"{"action":"event","event":{"name":"n","data":"d"}}"#,
                "missing field `log`",
            ),
            (
                "wrong type",
                br#"{"action":"log","log":{"name":1,"data":"d"}}"#,
                "invalid type: integer, expected a string",
            ),
            ("missing field", br#"{"action":"mail","mail":{"to":"a@b.c","subject":"s"}}"#, "missing field `message`"),
            ("invalid email", br#"{"action":"auth","auth":{"email":"nope","password":"x"}}"#, "`auth.email`"),
            (
                "header injection",
                br#"{"action":"mail","mail":{"to":"a@b.c","subject":"a\r\nBcc: x@y.z","message":"m"}}"#,
                "`mail.subject`",
            ),
        ];
        for (why, body, expected) in cases {
            let message = HandleRequest::parse(body).unwrap_err().to_string();
            assert!(message.contains(expected), "{why}: {message:?} should contain {expected:?}");
        }
    }

    #[test]
    fn a_password_of_the_wrong_type_is_not_quoted_back() {
        let message =
            HandleRequest::parse(br#"{"action":"auth","auth":{"email":"a@b.c","password":987654321}}"#).unwrap_err();
        assert!(!message.to_string().contains("987654321"), "{message}");
    }
}
