//! Limits and field checks shared by the broker (at the edge) and the services.

use std::fmt;

/// Longest accepted e-mail address (RFC 5321 path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// bcrypt only reads the first 72 bytes of a password; longer ones are refused, not truncated.
pub const MAX_PASSWORD_BYTES: usize = 72;
/// Shortest password accepted at registration.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest log entry name.
pub const MAX_LOG_NAME_BYTES: usize = 256;
/// Longest log entry data.
pub const MAX_LOG_DATA_BYTES: usize = 64 * 1024;
/// Longest mail subject (one header line).
pub const MAX_SUBJECT_CHARS: usize = 255;
/// Longest mail message body.
pub const MAX_MESSAGE_BYTES: usize = 100 * 1024;
/// Longest user name part (first or last name).
pub const MAX_NAME_CHARS: usize = 255;

/// A field that failed a check: which one and why, in words a client can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The JSON field, dotted from the payload (`"email"`, `"mail.to"`).
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
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid field `{}`: {}", self.field, self.problem)
    }
}

impl std::error::Error for ValidationError {}

/// A non-empty value, at most `max` bytes.
pub fn bounded(field: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(ValidationError::new(field, format!("must be at most {max} bytes")));
    }
    Ok(())
}

/// A single header line: no CR or LF (header injection) nor other control characters.
pub fn single_line(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(field, "must be a single line without control characters"));
    }
    Ok(())
}

/// A plausible `local@domain` address. The mailer parses addresses again with lettre.
pub fn email(field: &str, value: &str) -> Result<(), ValidationError> {
    let value = value.trim();
    bounded(field, value, MAX_EMAIL_BYTES)?;
    single_line(field, value)?;
    let valid = match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !value.chars().any(|c| c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';'))
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }
        None => false,
    };
    if valid { Ok(()) } else { Err(ValidationError::new(field, "must be an e-mail address like name@example.com")) }
}

/// A serde error message without the offending value: `invalid type: integer `12345`, expected
/// a string` becomes `invalid type: integer, expected a string`. Error messages are shown to
/// callers and logged, and the value may be a password.
pub fn without_values(message: &str) -> String {
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
    fn emails_are_checked_for_shape() {
        for good in ["a@b.c", "admin@example.com", " me@there.com "] {
            assert!(email("email", good).is_ok(), "{good} should be accepted");
        }
        let cases = [
            ("", "empty"),
            ("plain", "no @"),
            ("@example.com", "no local part"),
            ("me@", "no domain"),
            ("a@b@c", "two @"),
            ("a b@c.d", "space"),
            ("a@c.d\r\nBcc: x@y.z", "header injection"),
            ("<a@b.c>", "angle brackets"),
        ];
        for (bad, why) in cases {
            assert!(email("email", bad).is_err(), "{bad:?} should be refused ({why})");
        }
    }

    #[test]
    fn bounded_refuses_empty_and_oversized_values() {
        assert!(bounded("name", "x", 3).is_ok());
        assert_eq!(bounded("name", "  ", 3).unwrap_err().problem, "must not be empty");
        assert_eq!(
            bounded("name", "abcd", 3).unwrap_err().to_string(),
            "invalid field `name`: must be at most 3 bytes"
        );
    }

    #[test]
    fn single_line_refuses_line_breaks() {
        assert!(single_line("subject", "Hello").is_ok());
        assert!(single_line("subject", "Hello\r\nBcc: evil@example.com").is_err());
    }
}
