//! The authentication service's bodies: credentials, users, registration, and the rules of
//! their fields.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::validate::{
    self, EmailAddress, MAX_NAME_CHARS, MAX_PASSWORD_BYTES, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, Problem,
    text_newtype,
};

/// `{"email", "password"}`: the body of `POST /authenticate` and of the `auth` action. Shape
/// checks only (the field types); whether the pair is right is the service's business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Credentials {
    pub email: EmailAddress,
    pub password: Password,
}

/// A user as the API shows it: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: i32,
    pub email: String,
    /// Read as empty when absent: the Go original omits empty names (`omitempty`).
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    /// Inactive users cannot log in. Sent as a bool; read from a bool or, as the Go original's
    /// authentication service sends it (its `user_active int`), from `0` or `1`.
    #[serde(deserialize_with = "bool_or_bit")]
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `true`/`false`, or `1`/`0`; any other number is refused rather than guessed at.
fn bool_or_bit<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrBit {
        Bool(bool),
        Bit(u8),
    }
    match BoolOrBit::deserialize(deserializer) {
        Ok(BoolOrBit::Bool(active)) => Ok(active),
        Ok(BoolOrBit::Bit(0)) => Ok(false),
        Ok(BoolOrBit::Bit(1)) => Ok(true),
        _ => Err(serde::de::Error::custom("`active` must be true, false, 0 or 1")),
    }
}

/// `POST /users`: registers a user so that demos and tests need no SQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    pub email: EmailAddress,
    #[serde(default)]
    pub first_name: PersonName,
    #[serde(default)]
    pub last_name: PersonName,
    pub password: NewPassword,
    /// Defaults to active, so a registered user can log in at once.
    #[serde(default = "default_active")]
    pub active: bool,
}

fn default_active() -> bool {
    true
}

/// A password as a login takes it: not empty, at most [`MAX_PASSWORD_CHARS`] characters (see
/// there for the bytes bcrypt reads). Never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct Password(String);

impl Password {
    pub fn parse(value: String) -> Result<Self, Problem> {
        if value.is_empty() {
            return Err(Problem::new("must not be empty"));
        }
        validate::at_most_chars(&value, MAX_PASSWORD_CHARS)?;
        Ok(Self(value))
    }
}

text_newtype!(
    Password,
    validate::text_schema(format!(
        "Not empty, at most {MAX_PASSWORD_CHARS} characters. One of more than {MAX_PASSWORD_BYTES} bytes \
         (UTF-8) is never right: no registration takes one (bcrypt reads no further)."
    ))
    .min_length(Some(1))
    .max_length(Some(MAX_PASSWORD_CHARS))
);

/// A password one may choose: at least [`MIN_PASSWORD_CHARS`] characters, at most
/// [`MAX_PASSWORD_BYTES`] (bcrypt's limit, refused rather than truncated). Never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(value: String) -> Result<Self, Problem> {
        if value.chars().count() < MIN_PASSWORD_CHARS {
            return Err(Problem::new(format!("must be at least {MIN_PASSWORD_CHARS} characters")));
        }
        validate::at_most_bytes(&value, MAX_PASSWORD_BYTES)?;
        Ok(Self(value))
    }
}

text_newtype!(
    NewPassword,
    validate::text_schema(format!(
        "At least {MIN_PASSWORD_CHARS} characters, at most {MAX_PASSWORD_BYTES} bytes (bcrypt's limit)."
    ))
    .min_length(Some(MIN_PASSWORD_CHARS))
    .max_length(Some(MAX_PASSWORD_BYTES))
);

// The password never reaches a log line.
impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A first or last name: one line, at most [`MAX_NAME_CHARS`] characters; empty when not given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(value: String) -> Result<Self, Problem> {
        validate::one_line(&value)?;
        validate::at_most_chars(&value, MAX_NAME_CHARS)?;
        Ok(Self(value))
    }
}

text_newtype!(
    PersonName,
    validate::text_schema(format!("One line, at most {MAX_NAME_CHARS} characters.")).max_length(Some(MAX_NAME_CHARS))
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn debug_output_never_shows_the_password() {
        let credentials: Credentials =
            validate::from_value(json!({"email": "admin@example.com", "password": "verysecret"})).unwrap();
        let shown = format!("{credentials:?}");
        assert!(!shown.contains("verysecret") && shown.contains("admin@example.com"), "{shown}");
        let user: NewUser = validate::from_value(json!({"email": "a@b.c", "password": "hunter2hunter2"})).unwrap();
        assert!(!format!("{user:?}").contains("hunter2"));
    }

    #[test]
    fn credentials_serialise_as_they_came() {
        let body = json!({"email": "admin@example.com", "password": "verysecret"});
        let credentials: Credentials = validate::from_value(body.clone()).unwrap();
        assert_eq!(serde_json::to_value(credentials).unwrap(), body);
    }

    #[test]
    fn bad_credentials_name_the_field_and_the_problem() {
        let cases = [
            (json!({"email": "", "password": "x"}), "`email`: must not be empty", "an empty email"),
            (json!({"email": "nope", "password": "x"}), "`email`: must be an e-mail address", "not an address"),
            (json!({"email": "a@b.c", "password": ""}), "`password`: must not be empty", "an empty password"),
            (
                json!({"email": "a@b.c", "password": "x".repeat(10_000)}),
                "`password`: must be at most 72 characters",
                "a 10 kB password",
            ),
            (json!({"email": "a@b.c", "password": "é".repeat(73)}), "`password`: must be at most 72 characters", "73"),
        ];
        for (body, expected, why) in cases {
            let message = validate::from_value::<Credentials>(body).unwrap_err().to_string();
            assert!(message.contains(expected), "{why}: {message:?} should contain {expected:?}");
        }
        assert!(validate::from_value::<Credentials>(json!({"email": "a@b.c", "password": "x"})).is_ok());
        // What the schema's maxLength allows is taken (the authentication service answers it).
        let many_bytes = json!({"email": "a@b.c", "password": "é".repeat(72)});
        assert!(validate::from_value::<Credentials>(many_bytes).is_ok(), "72 characters, 144 bytes");
    }

    #[test]
    fn a_user_reads_the_go_originals_active_flag_and_omitted_names_but_sends_a_bool() {
        let go = |active: &str| {
            format!(
                r#"{{"id":1,"email":"admin@example.com","active":{active},"created_at":"2022-03-14T00:00:00Z","updated_at":"2022-03-14T00:00:00+01:00"}}"#
            )
        };
        let cases = [
            ("1", Some(true)),
            ("0", Some(false)),
            ("true", Some(true)),
            ("false", Some(false)),
            ("2", None),
            ("\"1\"", None),
            ("null", None),
        ];
        for (active, expected) in cases {
            let read = serde_json::from_str::<User>(&go(active));
            assert_eq!(read.as_ref().ok().map(|user| user.active), expected, "active: {active}: {read:?}");
        }
        let user: User = serde_json::from_str(&go("1")).unwrap();
        assert_eq!((user.first_name.as_str(), user.last_name.as_str()), ("", ""));
        assert_eq!(user.updated_at.to_rfc3339(), "2022-03-13T23:00:00+00:00");
        let sent = serde_json::to_value(&user).unwrap();
        assert_eq!(sent["active"], serde_json::json!(true), "ours always sends a bool");
        assert_eq!(sent["first_name"], serde_json::json!(""));
    }

    #[test]
    fn registration_defaults_to_an_active_user_without_names() {
        let user: NewUser = validate::from_value(json!({"email": "a@b.c", "password": "longenough"})).unwrap();
        assert!(user.active);
        assert_eq!((user.first_name.as_str(), user.last_name.as_str()), ("", ""));
    }

    #[test]
    fn bad_registrations_name_the_field_and_the_problem() {
        let with = |extra: serde_json::Value| {
            let mut body = json!({"email": "a@b.c", "password": "correct horse"});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            body
        };
        let cases = [
            (with(json!({"password": "short"})), "`password`: must be at least 8 characters", "a short password"),
            (with(json!({"password": ""})), "`password`: must be at least 8 characters", "an empty password"),
            (with(json!({"password": "p".repeat(73)})), "`password`: must be at most 72 bytes", "a long password"),
            (with(json!({"password": "é".repeat(37)})), "`password`: must be at most 72 bytes", "37 chars, 74 bytes"),
            (with(json!({"email": "a.b.c"})), "`email`: must be an e-mail address", "not an address"),
            (with(json!({"first_name": "Eve\r\nBcc: x"})), "`first_name`: must be a single line", "a line break"),
            (with(json!({"last_name": "n".repeat(256)})), "`last_name`: must be at most 255 characters", "a long name"),
            (with(json!({"active": "yes"})), "`active`: invalid type: string, expected a boolean", "a string active"),
        ];
        for (body, expected, why) in cases {
            let message = validate::from_value::<NewUser>(body).unwrap_err().to_string();
            assert!(message.contains(expected), "{why}: {message:?} should contain {expected:?}");
        }
        let eight = with(json!({"password": "ééééé✓✓✓"}));
        assert!(validate::from_value::<NewUser>(eight).is_ok(), "8 characters, 19 bytes");
    }
}
