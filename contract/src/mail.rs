//! The mailer's `POST /send` body, also the payload of the broker's `mail` action, and the rules
//! of its fields; and the job the broker queues on RabbitMQ when the mailer cannot take a mail.

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::validate::{self, EmailAddress, MAX_MESSAGE_CHARS, MAX_SUBJECT_CHARS, Problem, text_newtype};

/// `{"from"?, "to", "subject", "message"}`. An empty, blank or missing `from` means the
/// mailer's `FROM_ADDRESS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MailPayload {
    /// The sender; `None` when the caller left it out or blank.
    #[serde(default, deserialize_with = "blank_is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = sender_schema))]
    pub from: Option<EmailAddress>,
    pub to: EmailAddress,
    pub subject: Subject,
    pub message: MessageText,
}

/// The durable exchange mail jobs are published to (`MAIL_EXCHANGE` overrides it).
pub const EXCHANGE: &str = "mail";
/// The durable queue the mailer replicas share (`MAIL_QUEUE` overrides it).
pub const DEFAULT_QUEUE: &str = "mail";
/// The routing key of every job, and the queue's binding.
pub const ROUTING_KEY: &str = "mail.send";
/// Content type of a job's body.
pub const CONTENT_TYPE: &str = "application/json";

/// `{"id", "mail": {...}}`: a mail the broker queued because the mailer was down. The id is the
/// AMQP `message_id` too; the mailer remembers the ids it sent, so a redelivered job is not
/// sent twice by the same process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailJob {
    pub id: Uuid,
    pub mail: MailPayload,
}

impl MailJob {
    /// A job with a fresh id.
    pub fn new(mail: MailPayload) -> Self {
        Self { id: Uuid::new_v4(), mail }
    }
}

/// `from` as [`blank_is_none`] reads it: an address, a blank string or null.
#[cfg(feature = "openapi")]
fn sender_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::Ref;
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
    let any_of = AnyOfBuilder::new()
        .item(Ref::from_schema_name("EmailAddress"))
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(validate::blank_pattern())))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some("The sender; absent, null, empty or blank: the mailer's `FROM_ADDRESS`."))
        .build();
    Schema::AnyOf(any_of)
}

/// `null`, `""` or blanks read as no address.
fn blank_is_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<EmailAddress>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        Some(from) if !from.trim().is_empty() => EmailAddress::parse(from).map(Some).map_err(serde::de::Error::custom),
        _ => Ok(None),
    }
}

/// A subject that fits one header line, trimmed: not blank, no CR/LF or other control
/// characters (header injection), at most [`MAX_SUBJECT_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct Subject(String);

impl Subject {
    pub fn parse(value: String) -> Result<Self, Problem> {
        validate::not_blank(&value)?;
        validate::one_line(&value)?;
        validate::at_most_chars(&value, MAX_SUBJECT_CHARS)?;
        Ok(Self(value.trim().to_owned()))
    }
}

text_newtype!(
    Subject,
    validate::text_schema(format!("One line, not blank, at most {MAX_SUBJECT_CHARS} characters."))
        .pattern(Some(validate::one_line_not_blank_pattern()))
        .min_length(Some(1))
        .max_length(Some(MAX_SUBJECT_CHARS))
);

/// The message body as the caller wrote it: not blank, at most [`MAX_MESSAGE_CHARS`] characters. It is
/// text, never markup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct MessageText(String);

impl MessageText {
    pub fn parse(value: String) -> Result<Self, Problem> {
        validate::not_blank(&value)?;
        validate::at_most_chars(&value, MAX_MESSAGE_CHARS)?;
        Ok(Self(value))
    }
}

text_newtype!(
    MessageText,
    validate::text_schema(format!("Plain text, never markup; not blank, at most {MAX_MESSAGE_CHARS} characters."))
        .pattern(Some(validate::not_blank_pattern()))
        .min_length(Some(1))
        .max_length(Some(MAX_MESSAGE_CHARS))
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn mail() -> Value {
        json!({"from": "me@example.com", "to": "you@there.com", "subject": "Test email", "message": "Hello world!"})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut mail = mail();
        mail[key] = value;
        mail
    }

    #[test]
    fn a_blank_or_missing_from_means_the_default_sender() {
        let parsed: MailPayload = validate::from_value(mail()).unwrap();
        assert_eq!(parsed.from.map(EmailAddress::into_inner).as_deref(), Some("me@example.com"));
        for from in [json!(""), json!("  "), Value::Null] {
            let parsed: MailPayload = validate::from_value(with("from", from.clone())).unwrap();
            assert_eq!(parsed.from, None, "{from}");
        }
        let mut without = mail();
        without.as_object_mut().unwrap().remove("from");
        assert_eq!(validate::from_value::<MailPayload>(without).unwrap().from, None);
    }

    #[test]
    fn a_job_round_trips_through_json_and_keeps_its_id() {
        let job = MailJob::new(validate::from_value(mail()).unwrap());
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["id"], json!(job.id.to_string()));
        assert_eq!(json["mail"], mail(), "the mail travels as the mailer's /send body");
        let back: MailJob = serde_json::from_value(json).unwrap();
        assert_eq!(back, job);
        assert_ne!(MailJob::new(back.mail.clone()).id, job.id, "each job has its own id");
    }

    #[test]
    fn a_job_with_a_bad_mail_is_refused() {
        let bad = json!({"id": uuid::Uuid::new_v4(), "mail": with("to", json!("nope"))});
        assert!(serde_json::from_value::<MailJob>(bad).is_err());
    }

    #[test]
    fn it_serialises_as_the_go_original_sends_it() {
        let parsed: MailPayload = validate::from_value(mail()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), mail());
    }

    #[test]
    fn subjects_are_trimmed_and_may_be_any_one_line_text() {
        for (given, kept) in [(" Test email ", "Test email"), ("Grüße ✓", "Grüße ✓")] {
            assert_eq!(Subject::parse(given.to_owned()).unwrap().as_str(), kept);
        }
        assert!(Subject::parse("é".repeat(MAX_SUBJECT_CHARS)).is_ok(), "the limit counts characters, not bytes");
    }

    #[test]
    fn a_message_may_be_as_long_as_the_limit() {
        assert!(MessageText::parse("m".repeat(MAX_MESSAGE_CHARS)).is_ok());
        assert_eq!(MessageText::parse("a\r\nb".into()).unwrap().as_str(), "a\r\nb", "kept as written");
    }

    #[test]
    fn bad_mails_name_the_field_and_the_problem() {
        let cases = [
            (with("from", json!("nope")), "`from`: must be an e-mail address", "a from that is no address"),
            (with("from", json!("Evil <evil@example.com>")), "`from`: must be an e-mail address", "a display name"),
            (with("to", json!("")), "`to`: must not be empty", "an empty to"),
            (with("to", json!("a@b.c\r\nBcc: x@y.z")), "`to`: must be a single line", "header injection in to"),
            (with("to", json!(42)), "`to`: invalid type: integer, expected a string", "a number as to"),
            (with("subject", json!("")), "`subject`: must not be empty", "an empty subject"),
            (with("subject", json!("   ")), "`subject`: must not be empty", "a blank subject"),
            (with("subject", json!("Hi\r\nBcc: x@y.z")), "`subject`: must be a single line", "CRLF in the subject"),
            (with("subject", json!("Hi\nBcc: x@y.z")), "`subject`: must be a single line", "LF in the subject"),
            (with("subject", json!("Hi\rBcc: x@y.z")), "`subject`: must be a single line", "CR in the subject"),
            (with("subject", json!("Hi\u{0}there")), "`subject`: must be a single line", "NUL in the subject"),
            (with("subject", json!("s".repeat(256))), "`subject`: must be at most 255 characters", "a long subject"),
            (with("message", json!(" \n\t")), "`message`: must not be empty", "a blank message"),
            (
                with("message", json!("m".repeat(MAX_MESSAGE_CHARS + 1))),
                "`message`: must be at most 102400 characters",
                "a message over 100 KiB",
            ),
        ];
        for (body, expected, why) in cases {
            let message = validate::from_value::<MailPayload>(body).unwrap_err().to_string();
            assert!(message.contains(expected), "{why}: {message:?} should contain {expected:?}");
        }
    }
}
