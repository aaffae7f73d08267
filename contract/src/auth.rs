//! The authentication service's bodies: credentials, users, registration.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::validate::{self, ValidationError};

/// `{"email", "password"}`: the body of `POST /authenticate` and of the `auth` action.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

impl Credentials {
    /// Shape checks only; whether the pair is right is the service's business.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate::email("email", &self.email)?;
        if self.password.is_empty() {
            return Err(ValidationError::new("password", "must not be empty"));
        }
        if self.password.len() > validate::MAX_PASSWORD_BYTES {
            return Err(ValidationError::new(
                "password",
                format!("must be at most {} bytes", validate::MAX_PASSWORD_BYTES),
            ));
        }
        Ok(())
    }
}

// The password never reaches a log line.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("email", &self.email).field("password", &"<redacted>").finish()
    }
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
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    pub password: String,
    /// Defaults to active, so a registered user can log in at once.
    #[serde(default = "default_active")]
    pub active: bool,
}

fn default_active() -> bool {
    true
}

impl NewUser {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate::email("email", &self.email)?;
        for (field, value) in [("first_name", &self.first_name), ("last_name", &self.last_name)] {
            validate::single_line(field, value)?;
            if value.chars().count() > validate::MAX_NAME_CHARS {
                return Err(ValidationError::new(
                    field,
                    format!("must be at most {} characters", validate::MAX_NAME_CHARS),
                ));
            }
        }
        if self.password.chars().count() < validate::MIN_PASSWORD_CHARS {
            return Err(ValidationError::new(
                "password",
                format!("must be at least {} characters", validate::MIN_PASSWORD_CHARS),
            ));
        }
        if self.password.len() > validate::MAX_PASSWORD_BYTES {
            return Err(ValidationError::new(
                "password",
                format!("must be at most {} bytes", validate::MAX_PASSWORD_BYTES),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("email", &self.email)
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("password", &"<redacted>")
            .field("active", &self.active)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(email: &str, password: &str) -> Credentials {
        Credentials { email: email.into(), password: password.into() }
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let shown = format!("{:?}", creds("admin@example.com", "verysecret"));
        assert!(!shown.contains("verysecret"), "{shown}");
        let user = NewUser {
            email: "a@b.c".into(),
            first_name: String::new(),
            last_name: String::new(),
            password: "hunter2hunter2".into(),
            active: true,
        };
        assert!(!format!("{user:?}").contains("hunter2"));
    }

    #[test]
    fn credentials_are_checked() {
        assert!(creds("admin@example.com", "verysecret").validate().is_ok());
        let cases = [
            (creds("", "x"), "email", "empty email"),
            (creds("nope", "x"), "email", "not an address"),
            (creds("a@b.c", ""), "password", "empty password"),
            (creds("a@b.c", &"x".repeat(10_000)), "password", "10 kB password"),
        ];
        for (input, field, why) in cases {
            assert_eq!(input.validate().unwrap_err().field, field, "{why}");
        }
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
    fn registration_defaults_to_an_active_user() {
        let user: NewUser = serde_json::from_str(r#"{"email":"a@b.c","password":"longenough"}"#).unwrap();
        assert!(user.active);
        assert!(user.validate().is_ok());
        let short: NewUser = serde_json::from_str(r#"{"email":"a@b.c","password":"short"}"#).unwrap();
        assert_eq!(short.validate().unwrap_err().field, "password");
    }
}
