//! The mailer's `POST /send` body, also the payload of the broker's `mail` action.

use serde::{Deserialize, Serialize};

use crate::validate::{self, ValidationError};

/// `{"from"?, "to", "subject", "message"}`. An empty or missing `from` means the mailer's
/// `FROM_ADDRESS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MailPayload {
    #[serde(default)]
    pub from: Option<String>,
    pub to: String,
    pub subject: String,
    pub message: String,
}

impl MailPayload {
    /// The sender the caller chose, if any.
    pub fn sender(&self) -> Option<&str> {
        self.from.as_deref().map(str::trim).filter(|from| !from.is_empty())
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(from) = self.sender() {
            validate::email("from", from)?;
        }
        validate::email("to", &self.to)?;
        validate::bounded("subject", &self.subject, validate::MAX_SUBJECT_CHARS * 4)?;
        validate::single_line("subject", &self.subject)?;
        if self.subject.chars().count() > validate::MAX_SUBJECT_CHARS {
            return Err(ValidationError::new(
                "subject",
                format!("must be at most {} characters", validate::MAX_SUBJECT_CHARS),
            ));
        }
        validate::bounded("message", &self.message, validate::MAX_MESSAGE_BYTES)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> MailPayload {
        MailPayload {
            from: Some("me@example.com".into()),
            to: "you@there.com".into(),
            subject: "Test email".into(),
            message: "Hello world!".into(),
        }
    }

    #[test]
    fn a_blank_from_means_the_default_sender() {
        assert_eq!(mail().sender(), Some("me@example.com"));
        assert_eq!(MailPayload { from: Some("  ".into()), ..mail() }.sender(), None);
        assert_eq!(MailPayload { from: None, ..mail() }.sender(), None);
    }

    #[test]
    fn bad_mails_name_the_field() {
        assert!(mail().validate().is_ok());
        let cases = [
            (MailPayload { from: Some("nope".into()), ..mail() }, "from"),
            (MailPayload { to: "".into(), ..mail() }, "to"),
            (MailPayload { to: "a@b.c\r\nBcc: x@y.z".into(), ..mail() }, "to"),
            (MailPayload { subject: "".into(), ..mail() }, "subject"),
            (MailPayload { subject: "Hi\r\nBcc: x@y.z".into(), ..mail() }, "subject"),
            (MailPayload { subject: "s".repeat(256), ..mail() }, "subject"),
            (MailPayload { message: " ".into(), ..mail() }, "message"),
            (MailPayload { message: "m".repeat(100 * 1024 + 1), ..mail() }, "message"),
        ];
        for (payload, field) in cases {
            assert_eq!(payload.validate().unwrap_err().field, field, "{payload:?}");
        }
    }
}
