use contract::ValidationError;
use contract::mail::MailPayload;
use lettre::message::Mailbox;

use super::{MailAddress, MessageText, Subject};

/// A mail that is safe to render and send.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub from: Mailbox,
    pub to: MailAddress,
    pub subject: Subject,
    pub message: MessageText,
}

impl NewMail {
    /// Applies the contract's checks (the broker applies the same ones at the edge), then parses
    /// each field into its type. A blank or missing `from` becomes `default_from`.
    pub fn parse(payload: MailPayload, default_from: &Mailbox) -> Result<Self, ValidationError> {
        payload.validate()?;
        let from = match payload.sender() {
            Some(from) => MailAddress::parse("from", from)?.into_inner().into(),
            None => default_from.clone(),
        };
        Ok(Self {
            from,
            to: MailAddress::parse("to", &payload.to)?,
            subject: Subject::parse(&payload.subject)?,
            message: MessageText::parse(payload.message)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> MailPayload {
        MailPayload {
            from: Some("me@example.com".into()),
            to: "you@there.com".into(),
            subject: "Test email".into(),
            message: "Hello world!".into(),
        }
    }

    fn default_from() -> Mailbox {
        "John Smith <john.smith@example.com>".parse().unwrap()
    }

    #[test]
    fn a_blank_or_missing_from_falls_back_to_the_default_sender() {
        for from in [None, Some(String::new()), Some("  ".to_owned())] {
            let mail = NewMail::parse(MailPayload { from, ..payload() }, &default_from()).unwrap();
            assert_eq!(mail.from, default_from());
        }
        let mail = NewMail::parse(payload(), &default_from()).unwrap();
        assert_eq!(mail.from.to_string(), "me@example.com");
    }

    #[test]
    fn every_refusal_names_the_field() {
        let cases = [
            (MailPayload { from: Some("nope".into()), ..payload() }, "from"),
            (MailPayload { from: Some("a@b..c".into()), ..payload() }, "from"),
            (MailPayload { to: "a@b.c\r\nBcc: x@y.z".into(), ..payload() }, "to"),
            (MailPayload { subject: "Hi\r\nBcc: x@y.z".into(), ..payload() }, "subject"),
            (MailPayload { subject: String::new(), ..payload() }, "subject"),
            (MailPayload { message: String::new(), ..payload() }, "message"),
        ];
        for (payload, field) in cases {
            assert_eq!(NewMail::parse(payload.clone(), &default_from()).unwrap_err().field, field, "{payload:?}");
        }
    }
}
