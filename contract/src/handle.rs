//! The broker's `POST /handle` request: `{"action": A, ...}` with the payload under a key
//! named after the action (`event` carries its payload under `log`, as in the Go original).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::Credentials;
use crate::log::{EntryId, LogPayload, RecentLimit, TraceId};
use crate::mail::MailPayload;
use crate::validate::{self, ValidationError};

/// Every action the broker handles. Dispatch is an exhaustive `match`, so a new action
/// cannot be forgotten. Read a body with [`HandleRequest::parse`]; the serde attributes describe
/// the shape (for `Serialize` and the OpenAPI schema), and a test holds `parse` to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// The optional payload of the `logs` action: a page of entries, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogsQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<RecentLimit>,
    /// Only entries older than this one: the next page is `before` = the `id` of the last entry
    /// of this one. No entry with this id: 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<EntryId>,
    /// Only entries caused by the request of this trace (the `trace_id` of a log line, or of a
    /// `traceparent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
}

impl LogsQuery {
    /// The limit to ask the logger for: the default when absent, capped at the maximum.
    pub fn effective_limit(&self) -> u32 {
        self.limit.unwrap_or_default().get()
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
    /// The action as sent; the message quotes a short prefix of it ([`validate::quote`]).
    #[error("unknown action {action}; expected one of {expected}", action = validate::quote(.0), expected = HandleRequest::ACTIONS.join(", "))]
    UnknownAction(String),
    #[error("invalid {action:?} request: missing field `{key}`")]
    MissingPayload { action: &'static str, key: &'static str },
    #[error("invalid {action:?} request: {error}")]
    Invalid { action: &'static str, error: ValidationError },
}

impl HandleRequest {
    /// The action names, as they appear on the wire.
    pub const ACTIONS: [&'static str; 5] = ["auth", "log", "event", "mail", "logs"];

    /// Parses a body into its action; every field rule applies on the way, and every refusal
    /// names the problem, a field by its path from the payload key (`mail.to`). The payload is
    /// read on its own because serde's internally tagged enums lose the path of an error.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        let value = validate::JsonBody::parse(body).map_err(|e| RequestError::Syntax(e.to_string()))?.into_inner();
        let Value::Object(mut object) = value else { return Err(RequestError::NotAnObject) };
        let action = match object.get("action") {
            None => return Err(RequestError::MissingAction),
            Some(Value::String(action)) => action.clone(),
            Some(other) => return Err(RequestError::UnknownAction(other.to_string())),
        };
        let object = &mut object;
        Ok(match action.as_str() {
            "auth" => Self::Auth { auth: required(object, "auth", "auth")? },
            "log" => Self::Log { log: required(object, "log", "log")? },
            "event" => Self::Event { log: required(object, "event", "log")? },
            "mail" => Self::Mail { mail: required(object, "mail", "mail")? },
            "logs" => Self::Logs { logs: payload(object, "logs", "logs")?.unwrap_or_default() },
            _ => return Err(RequestError::UnknownAction(action)),
        })
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
}

/// The payload of `action` under `key`, when there is one.
fn payload<T: DeserializeOwned>(
    object: &mut Map<String, Value>,
    action: &'static str,
    key: &'static str,
) -> Result<Option<T>, RequestError> {
    let Some(value) = object.remove(key) else { return Ok(None) };
    // serde would read a struct from an array too, by position; the schema says object.
    if !value.is_object() {
        return Err(RequestError::Invalid { action, error: ValidationError::new(key, "must be a JSON object") });
    }
    validate::from_value(value).map(Some).map_err(|error| RequestError::Invalid { action, error: error.within(key) })
}

fn required<T: DeserializeOwned>(
    object: &mut Map<String, Value>,
    action: &'static str,
    key: &'static str,
) -> Result<T, RequestError> {
    payload(object, action, key)?.ok_or(RequestError::MissingPayload { action, key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{DEFAULT_RECENT, Level, MAX_RECENT};

    // The Go original's bodies, byte for byte.
    #[test]
    fn the_go_originals_bodies_deserialize() {
        let auth =
            HandleRequest::parse(br#"{"action":"auth","auth":{"email":"admin@example.com","password":"verysecret"}}"#)
                .unwrap();
        assert_eq!(
            auth,
            HandleRequest::Auth {
                auth: Credentials {
                    email: "admin@example.com".parse().unwrap(),
                    password: "verysecret".parse().unwrap()
                }
            }
        );

        let log =
            HandleRequest::parse(br#"{"action":"log","log":{"name":"event","data":"Some kind of data"}}"#).unwrap();
        assert_eq!(
            log,
            HandleRequest::Log {
                log: LogPayload {
                    name: "event".parse().unwrap(),
                    data: "Some kind of data".parse().unwrap(),
                    level: None
                }
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
                    from: Some("me@example.com".parse().unwrap()),
                    to: "you@there.com".parse().unwrap(),
                    subject: "Test email".parse().unwrap(),
                    message: "Hello world!".parse().unwrap(),
                }
            }
        );
    }

    #[test]
    fn parse_reads_what_serde_writes_for_every_action() {
        let bodies: [&[u8]; 7] = [
            br#"{"action":"auth","auth":{"email":"admin@example.com","password":"verysecret"}}"#,
            br#"{"action":"log","log":{"name":"event","data":"d","level":"WARNING"}}"#,
            br#"{"action":"event","log":{"name":"event","data":"d"}}"#,
            br#"{"action":"mail","mail":{"to":"you@there.com","subject":"s","message":"m"}}"#,
            br#"{"action":"logs","logs":{"limit":5}}"#,
            br#"{"action":"logs","logs":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}}"#,
            br#"{"action":"logs"}"#,
        ];
        let mut actions = Vec::new();
        for body in bodies {
            let request = HandleRequest::parse(body).unwrap();
            let written = serde_json::to_vec(&request).unwrap();
            assert_eq!(HandleRequest::parse(&written).unwrap(), request, "{}", String::from_utf8_lossy(&written));
            actions.push(request.action());
        }
        actions.dedup();
        assert_eq!(actions, HandleRequest::ACTIONS, "every action, each under its name");
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
        let HandleRequest::Logs { logs } =
            HandleRequest::parse(br#"{"action":"logs","logs":{"before":"65f1c0ffee0000000000abcd"}}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(logs.before.map(EntryId::into_inner).as_deref(), Some("65f1c0ffee0000000000abcd"));
        let HandleRequest::Logs { logs } =
            HandleRequest::parse(br#"{"action":"logs","logs":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}}"#)
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(logs.trace_id.map(TraceId::into_inner).as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
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
        let cases: [(&str, &[u8], &str); 19] = [
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
                "invalid \"log\" request: invalid field `log.name`: invalid type: integer, expected a string",
            ),
            (
                "payload not an object",
                br#"{"action":"auth","auth":[1]}"#,
                "invalid field `auth`: must be a JSON object",
            ),
            ("missing field", br#"{"action":"mail","mail":{"to":"a@b.c","subject":"s"}}"#, "missing field `message`"),
            ("invalid email", br#"{"action":"auth","auth":{"email":"nope","password":"x"}}"#, "`auth.email`"),
            (
                "a limit of 0",
                br#"{"action":"logs","logs":{"limit":0}}"#,
                "invalid \"logs\" request: invalid field `logs.limit`: must be at least 1",
            ),
            (
                "a limit beyond u32",
                br#"{"action":"logs","logs":{"limit":4294967296}}"#,
                "invalid field `logs.limit`: must be a whole number from 1 to 4294967295",
            ),
            (
                "a payload as an array",
                br#"{"action":"logs","logs":[]}"#,
                "invalid \"logs\" request: invalid field `logs`: must be a JSON object",
            ),
            (
                "a before that is not an id",
                br#"{"action":"logs","logs":{"before":"last"}}"#,
                "invalid field `logs.before`: must be an entry id of 24 hex digits",
            ),
            (
                "a trace id that is not one",
                br#"{"action":"logs","logs":{"trace_id":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}"#,
                "invalid field `logs.trace_id`: must be a trace id of 32 lowercase hex digits",
            ),
            (
                "a negative limit",
                br#"{"action":"logs","logs":{"limit":-1}}"#,
                "invalid field `logs.limit`: must be a whole number",
            ),
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
