use contract::mail::{MailPayload, Subject};
use lettre::message::Mailbox;

use super::{MailAddress, MessageText};

/// A mail that is safe to render and send: a parsed [`MailPayload`], its fields converted.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub from: Mailbox,
    pub to: MailAddress,
    pub subject: Subject,
    pub message: MessageText,
}

impl NewMail {
    /// The mail of `payload`; without a `from`, from `default_from`.
    pub fn new(payload: MailPayload, default_from: &Mailbox) -> Self {
        let from = match payload.from {
            Some(from) => MailAddress::from(from).into_inner().into(),
            None => default_from.clone(),
        };
        Self { from, to: payload.to.into(), subject: payload.subject, message: payload.message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn payload(from: Value) -> MailPayload {
        let body = json!({"from": from, "to": "you@there.com", "subject": "Test email", "message": "Hello world!"});
        contract::validate::from_value(body).unwrap()
    }

    fn default_from() -> Mailbox {
        "John Smith <john.smith@example.com>".parse().unwrap()
    }

    #[test]
    fn a_blank_or_missing_from_falls_back_to_the_default_sender() {
        for from in [Value::Null, json!(""), json!("  ")] {
            assert_eq!(NewMail::new(payload(from), &default_from()).from, default_from());
        }
        let mail = NewMail::new(payload(json!("me@example.com")), &default_from());
        assert_eq!(mail.from.to_string(), "me@example.com");
        assert_eq!(mail.to.to_string(), "you@there.com");
    }
}
