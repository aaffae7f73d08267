//! The field rules, each defined once as a type that parses on deserialisation, and the one
//! way to read a JSON body into such types with errors that name the field.
//!
//! A wire type's fields are newtypes (`#[serde(try_from = "String")]`, as zero2prod's
//! `SubscriberEmail::parse`): a value that exists has passed its rule, so the broker (at the
//! edge) and the service that receives the same body refuse the same inputs, in the same words.
//! The rule of a field lives beside the type that uses it: [`EmailAddress`] here (the auth and
//! mail bodies share it), the subject and message text in `mail`, the passwords and names in
//! `auth`, the log name, data and `recent` limit in `log`.
//!
//! [`from_value`] names the field of any refusal by its path (`mail.to`, via
//! `serde_path_to_error`) and never quotes a wrongly typed value back ([`without_values`]): it
//! may be a password.
//!
//! The RPC and AMQP seams (`LogEntry`, `LogEvent`) keep plain fields, checked by their
//! `validate` through the same rules: a tarpc request that does not deserialise ends the
//! connection instead of answering `LogError::Invalid`, and the listener dead-letters a bad
//! event with a reason instead of failing to read it.

use std::fmt;
use std::net::IpAddr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Longest accepted e-mail address: RFC 5321's path limit (256 with the angle brackets) is 254,
/// and the SMTP catcher's server (smtp-server, maildev's) refuses more than 253 with a 501.
pub const MAX_EMAIL_BYTES: usize = 253;
/// Longest local part (RFC 5321 §4.5.3.1.1).
pub const MAX_EMAIL_LOCAL_BYTES: usize = 64;
/// Longest domain label (RFC 1035). A domain's own limit (253) is implied by the address's.
pub const MAX_EMAIL_LABEL_BYTES: usize = 63;
/// The hex digits of a stored entry's id (a MongoDB ObjectId).
pub const ENTRY_ID_HEX_DIGITS: usize = 24;
/// Longest token subject stored with a log entry.
pub const MAX_SUB_BYTES: usize = 256;
/// bcrypt only reads the first 72 bytes of a password: a new one is refused beyond, never
/// truncated.
pub const MAX_PASSWORD_BYTES: usize = 72;
/// Longest password a login takes, in characters: a limit JSON Schema's `maxLength` can state
/// (a byte limit it cannot). A login password over [`MAX_PASSWORD_BYTES`] cannot be right (no
/// registration takes one), so the authentication service answers it as a wrong password
/// without letting bcrypt truncate it into a match.
pub const MAX_PASSWORD_CHARS: usize = MAX_PASSWORD_BYTES;
/// Shortest password accepted at registration.
pub const MIN_PASSWORD_CHARS: usize = 8;
// Text limits count characters (Unicode scalar values), as JSON Schema's `maxLength` does, so
// that the OpenAPI states them exactly; the byte limits that remain are the ones a protocol
// sets (SMTP's, bcrypt's).
/// Longest log entry name.
pub const MAX_LOG_NAME_CHARS: usize = 256;
/// Longest log entry data.
pub const MAX_LOG_DATA_CHARS: usize = 64 * 1024;
/// Longest mail subject (one header line).
pub const MAX_SUBJECT_CHARS: usize = 255;
/// Longest mail message body.
pub const MAX_MESSAGE_CHARS: usize = 100 * 1024;
/// Longest user name part (first or last name).
pub const MAX_NAME_CHARS: usize = 255;

/// What is wrong with a value, in words a client can act on; the field is named by whoever
/// knows it (the path of a deserialisation, or [`Problem::at`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Problem(String);

impl Problem {
    pub fn new(problem: impl Into<String>) -> Self {
        Self(problem.into())
    }

    /// The problem of the field `field`.
    pub fn at(self, field: &str) -> ValidationError {
        ValidationError::new(field, self.0)
    }
}

/// A field that failed a check: which one and why, in words a client can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The JSON field, dotted from the body (`"email"`, `"mail.to"`); empty when the body as a
    /// whole is wrong (not an object, a missing field).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into() }
    }

    /// The same error under a payload key, e.g. `to` becomes `mail.to`.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() { parent.to_owned() } else { format!("{parent}.{}", self.field) };
        self
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "invalid request: {}", self.problem)
        } else {
            write!(f, "invalid field `{}`: {}", self.field, self.problem)
        }
    }
}

impl std::error::Error for ValidationError {}

/// Reads `T` from a JSON value. Every field rule applies on the way (the newtypes parse), and a
/// refusal names its field by its path. serde reads a struct from an array too, by position: an
/// error there is the body's, as if it had no path.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ValidationError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path();
        let field = match path.iter().next() {
            None | Some(serde_path_to_error::Segment::Seq { .. }) => String::new(),
            Some(_) => path.to_string(),
        };
        ValidationError::new(field, without_values(&error.inner().to_string()))
    })
}

/// A JSON body read with every object's keys unique, at any depth. `serde_json::Value` keeps
/// the last of two equal keys while other parsers keep the first, so
/// `{"action":"log","action":"auth"}` could mean one action to the broker and another to
/// whatever reads the body next: a duplicate key is refused instead. Every HTTP body the
/// services parse goes through this before [`from_value`].
#[derive(Debug, Clone, PartialEq)]
pub struct JsonBody(pub serde_json::Value);

impl JsonBody {
    /// Parses `bytes`, refusing a duplicate key (named, cut short: it is the caller's input).
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn into_inner(self) -> serde_json::Value {
        self.0
    }
}

impl<'de> Deserialize<'de> for JsonBody {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeys).map(JsonBody)
    }
}

/// Builds a `serde_json::Value` as serde_json's own visitor does, but for duplicate keys.
struct UniqueKeys;

impl<'de> serde::de::Visitor<'de> for UniqueKeys {
    type Value = serde_json::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(serde_json::Value::Null, serde_json::Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(JsonBody(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(items.into())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!("duplicate key {}", quote(&key))));
            }
            let JsonBody(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(object.into())
    }
}

/// How many characters of a refused value [`quote`] shows.
pub const MAX_QUOTED_CHARS: usize = 64;

/// A refused value as a message may name it: quoted and escaped (`"a\nb"`, so no control
/// character reaches a log line or a terminal), and cut to its first [`MAX_QUOTED_CHARS`]
/// characters followed by its whole length when longer. Every message that names a value the
/// caller sent goes through this, so no answer or log line echoes a value at length.
pub fn quote(value: &str) -> String {
    let (prefix, cut) = escaped_prefix(value);
    format!("\"{prefix}\"{cut}")
}

/// The escaped prefix of `value` that [`quote`] shows, and what it says of the rest.
fn escaped_prefix(value: &str) -> (String, String) {
    let prefix: String = value.chars().take(MAX_QUOTED_CHARS).collect();
    let escaped = prefix.escape_debug().to_string();
    let cut = if prefix.len() < value.len() { format!("... ({} bytes)", value.len()) } else { String::new() };
    (escaped, cut)
}

/// A serde error message without the offending value: `invalid type: integer `12345`, expected
/// a string` becomes `invalid type: integer, expected a string`. Error messages are shown to
/// callers and logged, and the value may be a password. A name serde quotes back (`unknown
/// variant `LOUD``, `unknown field `x``) is kept, through [`quote`].
pub fn without_values(message: &str) -> String {
    for marker in ["unknown variant `", "unknown field `"] {
        let Some(start) = message.find(marker).map(|i| i + marker.len()) else { continue };
        let Some(end) = message[start..].rfind("`, expected").map(|i| start + i) else { continue };
        let (prefix, cut) = escaped_prefix(&message[start..end]);
        return format!("{}{prefix}`{cut}{}", &message[..start], &message[end + 1..]);
    }
    for marker in ["invalid type: ", "invalid value: "] {
        let Some(start) = message.find(marker).map(|i| i + marker.len()) else { continue };
        let Some(end) = message[start..].rfind(", expected").map(|i| start + i) else { continue };
        let unexpected = &message[start..end];
        if let Some(quoted) = unexpected.find(['`', '"']) {
            return format!("{}{}{}", &message[..start], unexpected[..quoted].trim_end(), &message[end..]);
        }
    }
    message.to_owned()
}

/// A single header line: no CR or LF (header injection) nor other control characters.
pub fn single_line(field: &str, value: &str) -> Result<(), ValidationError> {
    one_line(value).map_err(|problem| problem.at(field))
}

/// What [`char::is_control`] is (Unicode Cc), as ranges: the schema's patterns are made of them.
#[cfg(any(feature = "openapi", test))]
const CONTROL: [(char, char); 2] = [('\u{0}', '\u{1f}'), ('\u{7f}', '\u{9f}')];
/// What [`char::is_whitespace`] is (Unicode White_Space), which [`str::trim`] removes.
#[cfg(any(feature = "openapi", test))]
const WHITE_SPACE: [(char, char); 10] = [
    ('\u{9}', '\u{d}'),
    (' ', ' '),
    ('\u{85}', '\u{85}'),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
];

/// The inside of a regex character class of `ranges`, as `\uXXXX` escapes (ECMA 262 and
/// Python read them alike).
#[cfg(feature = "openapi")]
fn class(ranges: &[(char, char)]) -> String {
    ranges.iter().map(|&(from, to)| format!("\\u{:04X}-\\u{:04X}", from as u32, to as u32)).collect()
}

/// The schema pattern of [`not_blank`] and [`one_line`] together. No `$`: Python's would also
/// match before a final newline; the lookahead refuses a control character anywhere instead.
#[cfg(feature = "openapi")]
pub(crate) fn one_line_not_blank_pattern() -> String {
    format!("^(?![\\s\\S]*[{}])[\\s\\S]*[^{}]", class(&CONTROL), class(&WHITE_SPACE))
}

/// The schema pattern of what [`not_blank`] refuses: nothing but white space, if anything.
#[cfg(feature = "openapi")]
pub(crate) fn blank_pattern() -> String {
    format!("^(?![\\s\\S]*[^{}])", class(&WHITE_SPACE))
}

/// The schema pattern of [`not_blank`]: some character that is not white space.
#[cfg(feature = "openapi")]
pub(crate) fn not_blank_pattern() -> String {
    format!("[^{}]", class(&WHITE_SPACE))
}

pub(crate) fn one_line(value: &str) -> Result<(), Problem> {
    if value.chars().any(char::is_control) {
        return Err(Problem::new("must be a single line without control characters"));
    }
    Ok(())
}

/// Not blank.
pub(crate) fn not_blank(value: &str) -> Result<(), Problem> {
    if value.trim().is_empty() { Err(Problem::new("must not be empty")) } else { Ok(()) }
}

/// At most `max` bytes.
pub(crate) fn at_most_bytes(value: &str, max: usize) -> Result<(), Problem> {
    if value.len() > max { Err(Problem::new(format!("must be at most {max} bytes"))) } else { Ok(()) }
}

/// At most `max` characters.
pub(crate) fn at_most_chars(value: &str, max: usize) -> Result<(), Problem> {
    if value.chars().count() > max { Err(Problem::new(format!("must be at most {max} characters"))) } else { Ok(()) }
}

/// The impls every text newtype shares; the type's own `parse(String)` holds its rule.
macro_rules! text_newtype {
    ($name:ident, $schema:expr) => {
        impl TryFrom<String> for $name {
            type Error = $crate::validate::Problem;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::validate::Problem;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::parse(value.to_owned())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let schema: utoipa::openapi::ObjectBuilder = $schema;
                schema.into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use text_newtype;

/// The schema of a string, for the newtypes' `ToSchema`.
#[cfg(feature = "openapi")]
pub(crate) fn text_schema(description: impl Into<String>) -> utoipa::openapi::ObjectBuilder {
    use utoipa::openapi::{ObjectBuilder, Type};
    ObjectBuilder::new().schema_type(Type::String).description(Some(description))
}

/// A plausible `local@domain` address, trimmed: at most [`MAX_EMAIL_BYTES`] (a local part of
/// at most [`MAX_EMAIL_LOCAL_BYTES`], a domain in labels of at most [`MAX_EMAIL_LABEL_BYTES`]:
/// RFC 5321's and RFC 1035's limits, which an SMTP server
/// checks, and which the schema's `format: email` implies), one `@`, no
/// blank, control character or `<>,;` (no display name, no second recipient, no header), and
/// a local part and a domain as lettre checks them (the `email_address` crate's rules, or an IP
/// address), so that the mailer converts it to a lettre address without a second check.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(value: String) -> Result<Self, Problem> {
        let value = match value.trim() {
            trimmed if trimmed.len() == value.len() => value,
            trimmed => trimmed.to_owned(),
        };
        not_blank(&value)?;
        at_most_bytes(&value, MAX_EMAIL_BYTES)?;
        one_line(&value)?;
        if let Some((local, domain)) = value.split_once('@') {
            // email_address checks these too; said here so that the limits are ours, by name.
            if local.len() > MAX_EMAIL_LOCAL_BYTES {
                return Err(Problem::new(format!("the part before @ must be at most {MAX_EMAIL_LOCAL_BYTES} bytes")));
            }
            if domain.split('.').any(|label| label.len() > MAX_EMAIL_LABEL_BYTES) {
                return Err(Problem::new(format!(
                    "each part of the domain between dots must be at most {MAX_EMAIL_LABEL_BYTES} bytes"
                )));
            }
        }
        let shaped = match value.split_once('@') {
            Some((local, domain)) => {
                !domain.contains('@')
                    && !value.chars().any(|c| c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';'))
                    && email_address::EmailAddress::is_valid_local_part(local)
                    && (email_address::EmailAddress::is_valid_domain(domain) || is_ip_domain(domain))
            }
            None => false,
        };
        if !shaped {
            return Err(Problem::new("must be an e-mail address like name@example.com"));
        }
        Ok(Self(value))
    }

    /// The local part and the domain.
    pub fn parts(&self) -> (&str, &str) {
        // A parsed address has exactly one `@`.
        let at = self.0.find('@').unwrap_or(self.0.len());
        (&self.0[..at], self.0.get(at + 1..).unwrap_or_default())
    }
}

/// An IP address as a domain, bracketed or not, as lettre accepts it.
fn is_ip_domain(domain: &str) -> bool {
    let ip = domain.strip_prefix('[').and_then(|ip| ip.strip_suffix(']')).unwrap_or(domain);
    ip.parse::<IpAddr>().is_ok()
}

text_newtype!(
    EmailAddress,
    text_schema(format!(
        "An e-mail address `name@example.com` (RFC 5321), without a display name: at most {MAX_EMAIL_BYTES} bytes, \
         the part before @ at most {MAX_EMAIL_LOCAL_BYTES}, each part of the domain between dots at most \
         {MAX_EMAIL_LABEL_BYTES}."
    ))
    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Email)))
    .min_length(Some(1))
    .max_length(Some(MAX_EMAIL_BYTES))
);

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_the_wrong_type_are_not_quoted_back() {
        let cases = [
            (
                "invalid request: invalid type: integer `12345`, expected a string at line 1 column 30",
                "invalid request: invalid type: integer, expected a string at line 1 column 30",
            ),
            (
                "invalid request: invalid type: string \"yes\", expected a boolean at line 1 column 9",
                "invalid request: invalid type: string, expected a boolean at line 1 column 9",
            ),
            (
                "invalid request: invalid type: floating point `1.5`, expected a string at line 1 column 3",
                "invalid request: invalid type: floating point, expected a string at line 1 column 3",
            ),
            (
                "invalid request: invalid type: null, expected a string at line 1 column 13",
                "invalid request: invalid type: null, expected a string at line 1 column 13",
            ),
            (
                "invalid request: missing field `password` at line 1 column 17",
                "invalid request: missing field `password` at line 1 column 17",
            ),
            (
                r#"invalid request: invalid type: string "a, expected b", expected a boolean at line 1 column 9"#,
                "invalid request: invalid type: string, expected a boolean at line 1 column 9",
            ),
        ];
        for (given, expected) in cases {
            assert_eq!(without_values(given), expected);
        }
    }

    #[test]
    fn refused_values_are_quoted_escaped_and_cut_short() {
        let long = "x".repeat(500_000);
        let cases = [
            ("dance", r#""dance""#, "a short value"),
            ("", r#""""#, "empty"),
            ("a\"b\\c", r#""a\"b\\c""#, "quotes and backslashes escaped"),
            ("a\r\nb\0c\u{1b}", r#""a\r\nb\0c\u{1b}""#, "control characters escaped"),
            (&long[..MAX_QUOTED_CHARS], &format!("{:?}", &long[..MAX_QUOTED_CHARS]), "exactly the limit: not cut"),
        ];
        for (value, expected, why) in cases {
            assert_eq!(quote(value), expected, "{why}");
        }
        let cut = quote(&long);
        assert_eq!(cut, format!("\"{}\"... (500000 bytes)", "x".repeat(MAX_QUOTED_CHARS)));
        let wide = quote(&"é".repeat(100));
        assert!(
            wide.starts_with(&format!("\"{}\"", "é".repeat(MAX_QUOTED_CHARS))) && wide.ends_with("(200 bytes)"),
            "{wide}"
        );
    }

    #[test]
    fn an_unknown_variant_is_named_short_and_escaped() {
        let long = format!("unknown variant `{}`, expected one of `INFO`, `WARNING`", "L".repeat(1000));
        let cases = [
            ("unknown variant `LOUD`, expected one of `INFO`", "unknown variant `LOUD`, expected one of `INFO`"),
            ("unknown variant `a\nb`, expected `INFO`", "unknown variant `a\\nb`, expected `INFO`"),
            ("unknown field `x`, expected `name`", "unknown field `x`, expected `name`"),
        ];
        for (given, expected) in cases {
            assert_eq!(without_values(given), expected);
        }
        let shown = without_values(&long);
        assert_eq!(
            shown,
            format!("unknown variant `{}`... (1000 bytes), expected one of `INFO`, `WARNING`", "L".repeat(64))
        );
    }

    /// Issue 16: NUL, CR, LF and the other C0 controls are refused wherever one line is meant
    /// (through `/handle`, and at the RPC and AMQP seams that carry the same fields), while a
    /// log's data and a mail's message keep their newlines.
    #[test]
    fn control_characters_are_refused_where_a_single_line_is_meant() {
        use crate::handle::HandleRequest;
        /// A body with the control character (as a JSON escape) in one field.
        type WithControl = fn(&str) -> String;
        let single_line_fields: [(&str, WithControl); 8] = [
            ("log.name", |c| format!(r#"{{"action":"log","log":{{"name":"a{c}b","data":"d"}}}}"#)),
            ("event name (log.name)", |c| format!(r#"{{"action":"event","log":{{"name":"a{c}b","data":"d"}}}}"#)),
            ("log.level", |c| format!(r#"{{"action":"log","log":{{"name":"n","data":"d","level":"INFO{c}"}}}}"#)),
            ("event level", |c| format!(r#"{{"action":"event","log":{{"name":"n","data":"d","level":"{c}ERROR"}}}}"#)),
            ("mail.subject", |c| {
                format!(r#"{{"action":"mail","mail":{{"to":"a@b.c","subject":"s{c}t","message":"m"}}}}"#)
            }),
            ("mail.to", |c| format!(r#"{{"action":"mail","mail":{{"to":"a{c}x@b.c","subject":"s","message":"m"}}}}"#)),
            ("mail.from", |c| {
                format!(r#"{{"action":"mail","mail":{{"from":"x{c}@b.c","to":"a@b.c","subject":"s","message":"m"}}}}"#)
            }),
            ("auth.email", |c| format!(r#"{{"action":"auth","auth":{{"email":"a{c}@b.c","password":"p"}}}}"#)),
        ];
        // JSON escapes of NUL, CR, LF, TAB, ESC, the last C0 control, and DEL.
        let controls = [r"\u0000", r"\r", r"\n", r"\t", r"\u001b", r"\u001f", r"\u007f"];
        for (field, body) in single_line_fields {
            for control in controls {
                let body = body(control);
                let refused = HandleRequest::parse(body.as_bytes());
                assert!(refused.is_err(), "{field} with {control} accepted: {body}");
                let message = refused.unwrap_err().to_string();
                let raw = serde_json::from_str::<String>(&format!("\"{control}\"")).unwrap();
                assert!(!message.contains(&raw), "{field}: the control character is echoed raw: {message:?}");
            }
        }
        for control in ["\0", "\r", "\n", "\u{1b}"] {
            let entry = crate::log::LogEntry {
                name: format!("a{control}b"),
                data: "d".into(),
                level: Default::default(),
                event_id: None,
                sub: None,
                trace_id: None,
            };
            assert_eq!(entry.validate().unwrap_err().field, "name", "an RPC entry's name with {control:?}");
            let event = crate::event::LogEvent::new(
                crate::log::LogPayload { name: "n".parse().unwrap(), data: "d".parse().unwrap(), level: None },
                None,
            );
            let event = crate::event::LogEvent { name: format!("a{control}b"), ..event };
            assert_eq!(event.validate().unwrap_err().field, "name", "an AMQP event's name with {control:?}");
        }
        let multi_line = [
            r#"{"action":"log","log":{"name":"n","data":"line 1\nline 2\r\n\tindented"}}"#,
            r#"{"action":"mail","mail":{"to":"a@b.c","subject":"s","message":"Hello,\r\n\r\nbye"}}"#,
        ];
        for body in multi_line {
            assert!(HandleRequest::parse(body.as_bytes()).is_ok(), "newlines are kept in {body}");
        }
    }

    #[test]
    fn addresses_are_trimmed() {
        for (given, kept) in [
            ("admin@example.com", "admin@example.com"),
            (" me@there.com ", "me@there.com"),
            ("first+tag@sub.example.org", "first+tag@sub.example.org"),
            ("a@b.c", "a@b.c"),
            ("grüße@bücher.de", "grüße@bücher.de"),
            ("me@[127.0.0.1]", "me@[127.0.0.1]"),
        ] {
            let address = EmailAddress::parse(given.to_owned()).unwrap_or_else(|e| panic!("{given:?}: {e}"));
            assert_eq!(address.as_str(), kept);
        }
        let at_the_limits =
            format!("{}@{}.{}.{}.abcde", "x".repeat(64), "d".repeat(60), "e".repeat(60), "f".repeat(60));
        assert_eq!(at_the_limits.len(), MAX_EMAIL_BYTES);
        let address = EmailAddress::parse(at_the_limits.clone()).expect("every limit reached, none passed");
        assert_eq!(address.as_str(), at_the_limits);
    }

    #[test]
    fn anything_but_a_plain_address_is_refused() {
        let too_long = format!("{}@example.com", "x".repeat(300));
        // Each limit on its own: every other part within bounds.
        let long_local = format!("{}@example.com", "x".repeat(65));
        let long_label = format!("me@{}.com", "x".repeat(64));
        let total_254 = format!("{}@{}.{}.{}.abcdef", "x".repeat(64), "d".repeat(60), "e".repeat(60), "f".repeat(60));
        assert_eq!(total_254.len(), 254);
        let cases = [
            ("", "must not be empty", "empty"),
            ("  ", "must not be empty", "blank"),
            (too_long.as_str(), "must be at most 253 bytes", "too long"),
            (total_254.as_str(), "must be at most 253 bytes", "254 bytes: smtp-server refuses it"),
            (long_local.as_str(), "before @ must be at most 64 bytes", "a 65-byte local part"),
            (long_label.as_str(), "between dots must be at most 63 bytes", "a 64-byte label"),
            ("a@c.d\r\nBcc: x@y.z", "single line", "header injection"),
            ("a@b.c\nBcc: x@y.z", "single line", "bare LF"),
            ("plain", "e-mail address", "no @"),
            ("@example.com", "e-mail address", "no local part"),
            ("me@", "e-mail address", "no domain"),
            ("a@b@c", "e-mail address", "two @"),
            ("a b@c.d", "e-mail address", "a space"),
            ("<a@b.c>", "e-mail address", "angle brackets"),
            ("Someone <a@b.c>", "e-mail address", "a display name"),
            ("a@b.c, x@y.z", "e-mail address", "two recipients"),
            ("a@b..c", "e-mail address", "an empty domain label"),
            ("a@.b.c", "e-mail address", "a domain starting with a dot"),
            ("a@-b.c", "e-mail address", "a domain label starting with a hyphen"),
            ("a\"b@c.d", "e-mail address", "a quote in the local part"),
            ("a..b@c.d", "e-mail address", "an empty local part atom"),
        ];
        for (bad, problem, why) in cases {
            let error = EmailAddress::parse(bad.to_owned()).expect_err(why);
            assert!(error.to_string().contains(problem), "{why}: {error}");
        }
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        to: EmailAddress,
        flag: Option<bool>,
    }

    #[test]
    fn from_value_names_the_field_by_its_path_and_never_quotes_the_value() {
        let cases = [
            (serde_json::json!({"to": "nope"}), "invalid field `to`: must be an e-mail address", "a bad address"),
            (
                serde_json::json!({"to": 12345}),
                "invalid field `to`: invalid type: integer, expected a string",
                "a number",
            ),
            (
                serde_json::json!({"to": "a@b.c", "flag": "yes"}),
                "invalid field `flag`: invalid type: string, expected",
                "a string",
            ),
            (serde_json::json!({}), "invalid request: missing field `to`", "the field is missing"),
            (serde_json::json!([1, 2]), "invalid request: invalid type: integer, expected a string", "an array"),
            (serde_json::json!(true), "invalid request: invalid type: boolean", "not an object"),
        ];
        for (value, expected, why) in cases {
            let message = from_value::<Body>(value).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{why}: {message:?} should start with {expected:?}");
            assert!(!message.contains("12345") && !message.contains("yes"), "{why}: {message}");
        }
        assert_eq!(from_value::<Body>(serde_json::json!({"to": " a@b.c "})).unwrap().to.as_str(), "a@b.c");
    }

    #[test]
    fn an_error_within_a_payload_is_named_from_the_payload_key() {
        assert_eq!(ValidationError::new("to", "bad").within("mail").field, "mail.to");
        assert_eq!(ValidationError::new("", "bad").within("mail").field, "mail");
    }

    #[test]
    fn the_patterns_character_classes_are_the_rust_predicates() {
        let within = |ranges: &[(char, char)], c: char| ranges.iter().any(|&(from, to)| (from..=to).contains(&c));
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(within(&CONTROL, c), c.is_control(), "{:04X}", c as u32);
            assert_eq!(within(&WHITE_SPACE, c), c.is_whitespace(), "{:04X}", c as u32);
        }
    }

    #[test]
    fn single_line_refuses_line_breaks() {
        assert!(single_line("subject", "Hello").is_ok());
        assert_eq!(
            single_line("from", "Hello\r\nBcc: evil@example.com").unwrap_err().to_string(),
            "invalid field `from`: must be a single line without control characters"
        );
    }

    #[test]
    fn a_body_with_a_duplicate_key_is_refused_at_any_depth() {
        let cases = [
            (r#"{"action":"log","action":"auth"}"#, "duplicate key \"action\"", "top level"),
            (r#"{"auth":{"email":"a@b.c","email":"x@y.z"}}"#, "duplicate key \"email\"", "nested"),
            (r#"[{"a":1,"a":2}]"#, "duplicate key \"a\"", "inside an array"),
        ];
        for (body, expected, why) in cases {
            let message = JsonBody::parse(body.as_bytes()).unwrap_err().to_string();
            assert!(message.contains(expected), "{why}: {message}");
        }
        let body = r#"{"a":[1,2.5,"x",null,true],"b":{"a":{}}}"#;
        let parsed = JsonBody::parse(body.as_bytes()).unwrap().into_inner();
        assert_eq!(parsed, serde_json::from_str::<serde_json::Value>(body).unwrap(), "same value as serde_json's");
    }
}
