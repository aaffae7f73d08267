//! Log entries and the logger's errors, used by the logger (server) and by the broker and the
//! listener (clients); the RPC trait over them is in `crate::rpc`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::validate::{
    self, ENTRY_ID_HEX_DIGITS, MAX_LOG_DATA_CHARS, MAX_LOG_NAME_CHARS, MAX_SUB_BYTES, Problem, ValidationError,
    text_newtype,
};

/// How many entries `recent` returns when the caller does not say.
pub const DEFAULT_RECENT: u32 = 20;
/// The most entries one `recent` call returns, whatever the caller asks.
pub const MAX_RECENT: u32 = 100;
/// The most entries one `write_many` call takes.
pub const MAX_BATCH: usize = 1_000;

/// Severity; also the last part of an event's routing key (`log.INFO`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    #[default]
    #[serde(alias = "info")]
    Info,
    #[serde(alias = "warning", alias = "WARN", alias = "warn")]
    Warning,
    #[serde(alias = "error")]
    Error,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Info, Level::Warning, Level::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{"name", "data", "level"?}`: the payload of the `log` and `event` actions and of `POST /log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogPayload {
    pub name: LogName,
    pub data: LogData,
    #[serde(default)]
    pub level: Option<Level>,
}

impl LogPayload {
    /// The entry to store; `event_id` is set when it came through RabbitMQ, `sub` when the
    /// caller sent a valid token.
    pub fn into_entry(self, event_id: Option<Uuid>, sub: Option<String>) -> LogEntry {
        LogEntry {
            name: self.name.into_inner(),
            data: self.data.into_inner(),
            level: self.level.unwrap_or_default(),
            event_id,
            sub,
            trace_id: None,
        }
    }
}

/// A log entry's name: not blank, one line without control characters (NUL, CR, LF would
/// forge or split lines wherever names are printed), at most [`MAX_LOG_NAME_CHARS`] characters; kept as
/// written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct LogName(String);

impl LogName {
    pub fn parse(value: String) -> Result<Self, Problem> {
        Self::check(&value)?;
        Ok(Self(value))
    }

    /// The rule, for the plain fields of [`LogEntry`] and the event.
    pub fn check(value: &str) -> Result<(), Problem> {
        validate::not_blank(value)?;
        validate::one_line(value)?;
        validate::at_most_chars(value, MAX_LOG_NAME_CHARS)
    }
}

text_newtype!(
    LogName,
    validate::text_schema(format!(
        "Not blank, one line without control characters, at most {MAX_LOG_NAME_CHARS} characters."
    ))
    .pattern(Some(validate::one_line_not_blank_pattern()))
    .min_length(Some(1))
    .max_length(Some(MAX_LOG_NAME_CHARS))
);

/// A log entry's data: at most [`MAX_LOG_DATA_CHARS`] characters, possibly empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct LogData(String);

impl LogData {
    pub fn parse(value: String) -> Result<Self, Problem> {
        Self::check(&value)?;
        Ok(Self(value))
    }

    /// The rule, for the plain fields of [`LogEntry`] and the event.
    pub fn check(value: &str) -> Result<(), Problem> {
        validate::at_most_chars(value, MAX_LOG_DATA_CHARS)
    }
}

text_newtype!(
    LogData,
    validate::text_schema(format!("At most {MAX_LOG_DATA_CHARS} characters, possibly empty."))
        .max_length(Some(MAX_LOG_DATA_CHARS))
);

/// How many entries one `recent` call returns: at least 1 (0 is refused, not raised to 1), at
/// most [`MAX_RECENT`] (a larger number is capped, whatever the caller asks), and
/// [`DEFAULT_RECENT`] when the caller does not say.
/// Read from any JSON number that is a whole one: JSON Schema's `integer` includes `20.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Number")]
pub struct RecentLimit(u32);

impl RecentLimit {
    pub fn new(limit: u32) -> Result<Self, Problem> {
        if limit == 0 {
            return Err(Problem::new("must be at least 1"));
        }
        Ok(Self(limit.min(MAX_RECENT)))
    }

    /// The limit of a request that may leave it out.
    pub fn or_default(limit: Option<u32>) -> Result<Self, Problem> {
        limit.map(Self::new).transpose().map(Option::unwrap_or_default)
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for RecentLimit {
    fn default() -> Self {
        Self(DEFAULT_RECENT)
    }
}

impl TryFrom<serde_json::Number> for RecentLimit {
    type Error = Problem;

    fn try_from(limit: serde_json::Number) -> Result<Self, Problem> {
        let whole = match (limit.as_u64(), limit.as_f64()) {
            (Some(limit), _) => Some(limit),
            // Exact: every whole f64 up to u32::MAX converts without loss.
            (None, Some(limit)) if limit.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&limit) => {
                Some(limit as u64)
            }
            _ => None,
        };
        match whole.map(u32::try_from) {
            Some(Ok(limit)) => Self::new(limit),
            _ => Err(Problem::new(format!("must be a whole number from 1 to {}", u32::MAX))),
        }
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for RecentLimit {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            // Any u32 is accepted (and capped); int64, because int32 would say 2^31 is too large.
            .maximum(Some(u32::MAX))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .description(Some(format!(
                "How many entries, newest first: {DEFAULT_RECENT} when absent; at most {MAX_RECENT} are returned \
                 (a larger number is accepted and capped)."
            )))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for RecentLimit {}

/// One entry to store, as sent over RPC. Plain fields, checked by [`LogEntry::validate`] with
/// the rules of [`LogName`] and [`LogData`] (see [`crate::validate`] for why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub name: String,
    pub data: String,
    pub level: Level,
    /// The id of the event this entry came from; stored at most once.
    pub event_id: Option<Uuid>,
    /// The `sub` of the caller's access token: who did it. Absent without a token, and in the
    /// payloads of clients that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The trace of the request that caused the entry ([`TraceId`]'s rule): directly, through
    /// the listener, or as a login event. Absent in the payloads of clients that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl LogEntry {
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_fields(&self.name, &self.data, self.sub.as_deref())?;
        self.trace_id.as_deref().map_or(Ok(()), TraceId::check).map_err(|problem| problem.at("trace_id"))
    }

    /// The same entry, recorded as caused by the trace `trace_id` (the current span's, say).
    pub fn in_trace(self, trace_id: Option<String>) -> Self {
        Self { trace_id, ..self }
    }
}

/// The rules of a log entry's plain fields, for [`LogEntry`] and the event.
pub(crate) fn check_fields(name: &str, data: &str, sub: Option<&str>) -> Result<(), ValidationError> {
    LogName::check(name).map_err(|problem| problem.at("name"))?;
    LogData::check(data).map_err(|problem| problem.at("data"))?;
    // A subject comes from a verified token, but the RPC and AMQP seams take anyone's.
    sub.map_or(Ok(()), check_sub).map_err(|problem| problem.at("sub"))
}

/// A token subject as stored: not blank, one line, at most [`MAX_SUB_BYTES`].
fn check_sub(sub: &str) -> Result<(), Problem> {
    validate::not_blank(sub)?;
    validate::one_line(sub)?;
    validate::at_most_bytes(sub, MAX_SUB_BYTES)
}

/// A stored entry's id: a MongoDB ObjectId as [`ENTRY_ID_HEX_DIGITS`] hex digits, as
/// [`StoredEntry::id`] shows it; the `before` of a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct EntryId(String);

impl EntryId {
    pub fn parse(value: String) -> Result<Self, Problem> {
        if value.len() != ENTRY_ID_HEX_DIGITS || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Problem::new(format!("must be an entry id of {ENTRY_ID_HEX_DIGITS} hex digits")));
        }
        Ok(Self(value))
    }
}

text_newtype!(
    EntryId,
    validate::text_schema(format!("An entry's `id`: {ENTRY_ID_HEX_DIGITS} hex digits."))
        .pattern(Some(format!("^[0-9a-fA-F]{{{ENTRY_ID_HEX_DIGITS}}}$")))
        .min_length(Some(ENTRY_ID_HEX_DIGITS))
        .max_length(Some(ENTRY_ID_HEX_DIGITS))
);

/// The hex digits of a W3C trace id.
pub const TRACE_ID_HEX_DIGITS: usize = 32;

/// A W3C Trace Context trace id: [`TRACE_ID_HEX_DIGITS`] lowercase hex digits, not all zero (the
/// invalid id), as `traceparent` carries it and every log line records it; the filter of a
/// listing by trace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct TraceId(String);

impl TraceId {
    pub fn parse(value: String) -> Result<Self, Problem> {
        Self::check(&value)?;
        Ok(Self(value))
    }

    /// The rule, for the plain field of [`LogEntry`] and the RPC filter.
    pub fn check(value: &str) -> Result<(), Problem> {
        let hex = value.len() == TRACE_ID_HEX_DIGITS && value.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !hex {
            return Err(Problem::new(format!("must be a trace id of {TRACE_ID_HEX_DIGITS} lowercase hex digits")));
        }
        if value.bytes().all(|b| b == b'0') {
            return Err(Problem::new("must not be all zeros (the invalid trace id)"));
        }
        Ok(())
    }
}

text_newtype!(
    TraceId,
    validate::text_schema(format!(
        "A W3C trace id (the second part of `traceparent`): {TRACE_ID_HEX_DIGITS} lowercase hex digits, not all zero."
    ))
    .pattern(Some(format!("^(?!0{{{TRACE_ID_HEX_DIGITS}}}$)[0-9a-f]{{{TRACE_ID_HEX_DIGITS}}}$")))
    .min_length(Some(TRACE_ID_HEX_DIGITS))
    .max_length(Some(TRACE_ID_HEX_DIGITS))
);

/// A stored entry, newest first in listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredEntry {
    /// The MongoDB ObjectId, as 24 hex digits.
    pub id: String,
    pub name: String,
    pub data: String,
    pub level: Level,
    pub event_id: Option<Uuid>,
    /// The `sub` of the token the entry was made with; absent when there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The trace of the request that caused the entry; absent for entries stored without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a logger call can fail with; each variant is something the caller can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LogError {
    /// The request was refused; nothing was stored.
    #[error("invalid log entry: {0}")]
    Invalid(String),
    /// No entry has that id.
    #[error("log entry not found: {0}")]
    NotFound(String),
    /// MongoDB could not be reached or timed out; retrying later may succeed.
    #[error("log store unavailable: {0}")]
    Unavailable(String),
}

impl From<ValidationError> for LogError {
    fn from(error: ValidationError) -> Self {
        LogError::Invalid(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn levels_default_to_info_and_accept_lowercase() {
        let p: LogPayload = validate::from_value(json!({"name": "event", "data": "Some kind of data"})).unwrap();
        assert_eq!(p.level, None);
        assert_eq!(p.into_entry(None, None).level, Level::Info);
        let p: LogPayload = validate::from_value(json!({"name": "n", "data": "d", "level": "warning"})).unwrap();
        assert_eq!(p.level, Some(Level::Warning));
        let loud = validate::from_value::<LogPayload>(json!({"name": "n", "data": "d", "level": "LOUD"}));
        assert!(loud.unwrap_err().to_string().contains("`level`: unknown variant `LOUD`"));
    }

    #[test]
    fn payloads_are_bounded_and_name_the_field() {
        let cases = [
            (json!({"name": "", "data": "d"}), "`name`: must not be empty", "an empty name"),
            (json!({"name": "  ", "data": "d"}), "`name`: must not be empty", "a blank name"),
            (json!({"name": "x".repeat(257), "data": "d"}), "`name`: must be at most 256 characters", "a long name"),
            (
                json!({"name": "n", "data": "x".repeat(64 * 1024 + 1)}),
                "`data`: must be at most 65536 characters",
                "long data",
            ),
            (json!({"name": 1, "data": "d"}), "`name`: invalid type: integer, expected a string", "a number"),
            (json!({"name": "a\0b", "data": "d"}), "`name`: must be a single line", "a NUL in the name"),
            (json!({"name": "a\r\nb", "data": "d"}), "`name`: must be a single line", "CR LF in the name"),
            (json!({"name": "a\nb", "data": "d"}), "`name`: must be a single line", "LF in the name"),
        ];
        for (body, expected, why) in cases {
            let message = validate::from_value::<LogPayload>(body).unwrap_err().to_string();
            assert!(message.contains(expected), "{why}: {message:?} should contain {expected:?}");
        }
        let lines: LogPayload = validate::from_value(json!({"name": "n", "data": "one\ntwo"})).unwrap();
        assert_eq!(lines.data.as_str(), "one\ntwo", "data keeps its newlines");
        let kept: LogPayload = validate::from_value(json!({"name": " n ", "data": ""})).unwrap();
        assert_eq!((kept.name.as_str(), kept.data.as_str()), (" n ", ""), "kept as written; empty data is data");
    }

    #[test]
    fn entries_over_rpc_are_checked_by_the_same_rules() {
        let entry = |name: &str, data: &str| LogEntry {
            name: name.into(),
            data: data.into(),
            level: Level::Info,
            event_id: None,
            sub: None,
            trace_id: None,
        };
        assert!(entry("n", "").validate().is_ok());
        let cases = [
            (entry("", "d"), "invalid field `name`: must not be empty", "an empty name"),
            (entry(&"x".repeat(257), "d"), "invalid field `name`: must be at most 256 characters", "a long name"),
            (
                entry("n", &"x".repeat(64 * 1024 + 1)),
                "invalid field `data`: must be at most 65536 characters",
                "long data",
            ),
        ];
        for (entry, expected, why) in cases {
            assert_eq!(entry.validate().unwrap_err().to_string(), expected, "{why}");
        }
        let by = |sub: &str| LogEntry { sub: Some(sub.into()), ..entry("n", "") };
        assert!(by("42").validate().is_ok());
        let cases = [
            (by(""), "invalid field `sub`: must not be empty", "an empty subject"),
            (by("4\n2"), "invalid field `sub`: must be a single line without control characters", "a line break"),
            (by(&"x".repeat(257)), "invalid field `sub`: must be at most 256 bytes", "a long subject"),
        ];
        for (entry, expected, why) in cases {
            assert_eq!(entry.validate().unwrap_err().to_string(), expected, "{why}");
        }
        let traced = |id: &str| entry("n", "").in_trace(Some(id.into()));
        assert!(traced("4bf92f3577b34da6a3ce929d0e0e4736").validate().is_ok());
        let error = traced("nope").validate().unwrap_err().to_string();
        assert_eq!(error, "invalid field `trace_id`: must be a trace id of 32 lowercase hex digits");
    }

    #[test]
    fn trace_ids_are_32_lowercase_hex_digits_not_all_zero() {
        let hex = "must be a trace id of 32 lowercase hex digits";
        let cases = [
            ("4bf92f3577b34da6a3ce929d0e0e4736", Ok(()), "a W3C example"),
            ("00000000000000000000000000000001", Ok(()), "one non-zero digit is enough"),
            ("00000000000000000000000000000000", Err("must not be all zeros (the invalid trace id)"), "all zeros"),
            ("4BF92F3577B34DA6A3CE929D0E0E4736", Err(hex), "uppercase: traceparent is lowercase"),
            ("4bf92f3577b34da6a3ce929d0e0e473", Err(hex), "31 digits"),
            ("4bf92f3577b34da6a3ce929d0e0e47360", Err(hex), "33 digits"),
            ("4bf92f3577b34da6a3ce929d0e0e473z", Err(hex), "not hex"),
            (" 4bf92f3577b34da6a3ce929d0e0e4736", Err(hex), "padded"),
            ("", Err(hex), "empty"),
        ];
        for (given, expected, why) in cases {
            let parsed = TraceId::parse(given.into()).map(|id| assert_eq!(id.as_str(), given));
            assert_eq!(parsed.map_err(|p| p.to_string()), expected.map_err(str::to_owned), "{why}");
        }
        let read = serde_json::from_str::<TraceId>("\"nope\"").unwrap_err().to_string();
        assert!(read.contains(hex), "{read}");
    }

    #[test]
    fn an_entry_without_a_trace_reads_and_writes_as_before() {
        let old = r#"{"name":"n","data":"d","level":"INFO","event_id":null}"#;
        let entry: LogEntry = serde_json::from_str(old).unwrap();
        assert_eq!(entry.trace_id, None);
        assert_eq!(serde_json::to_string(&entry).unwrap(), old, "no `trace_id` key when there is none");
        let traced = entry.in_trace(Some("4bf92f3577b34da6a3ce929d0e0e4736".into()));
        assert_eq!(serde_json::to_value(&traced).unwrap()["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn an_entry_without_a_subject_reads_and_writes_as_before() {
        let old = r#"{"name":"n","data":"d","level":"INFO","event_id":null}"#;
        let entry: LogEntry = serde_json::from_str(old).unwrap();
        assert_eq!(entry.sub, None);
        assert_eq!(serde_json::to_string(&entry).unwrap(), old, "no `sub` key when there is none");
        let with = LogEntry { sub: Some("7".into()), ..entry };
        assert_eq!(serde_json::to_value(&with).unwrap()["sub"], "7");
    }

    #[test]
    fn entry_ids_are_24_hex_digits() {
        assert!(EntryId::parse("65f1c0ffee0000000000ABCD".into()).is_ok());
        for bad in ["", "nope", "65f1c0ffee0000000000abc", "65f1c0ffee0000000000abcdz", " 65f1c0ffee0000000000abcd"] {
            let problem = EntryId::parse(bad.into()).unwrap_err();
            assert_eq!(problem.to_string(), "must be an entry id of 24 hex digits", "{bad:?}");
        }
    }

    #[test]
    fn a_recent_limit_refuses_zero_and_caps_large_numbers() {
        let cases = [
            (None, Ok(DEFAULT_RECENT), "absent: the default"),
            (Some(1), Ok(1), "the smallest"),
            (Some(MAX_RECENT), Ok(MAX_RECENT), "the largest"),
            (Some(100_000), Ok(MAX_RECENT), "more than the largest: capped"),
            (Some(0), Err(Problem::new("must be at least 1")), "zero: refused, not raised"),
        ];
        for (given, expected, why) in cases {
            assert_eq!(RecentLimit::or_default(given).map(RecentLimit::get), expected, "{why}");
        }
        let whole = "must be a whole number from 1 to 4294967295";
        let cases = [
            ("5", Ok(5), "an integer"),
            ("5.0", Ok(5), "a whole number written as a float: an integer to JSON Schema"),
            ("4294967295", Ok(MAX_RECENT), "u32::MAX: capped"),
            ("0", Err("must be at least 1".to_owned()), "zero"),
            ("5.5", Err(whole.to_owned()), "a fraction"),
            ("-1", Err(whole.to_owned()), "negative"),
            ("4294967296", Err(whole.to_owned()), "beyond u32"),
            ("1e30", Err(whole.to_owned()), "far beyond"),
        ];
        for (json, expected, why) in cases {
            let read = serde_json::from_str::<RecentLimit>(json).map(RecentLimit::get).map_err(|e| e.to_string());
            assert_eq!(read, expected, "{why}");
        }
    }
}
