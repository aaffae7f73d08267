//! What the mailer makes of a valid `POST /send` body. The field rules are the contract's
//! (`contract::mail::MailPayload` parses them); this module only converts the parsed fields into
//! what lettre and the templates take, so that no rule is checked twice.

mod mail_address;
mod message_text;
mod new_mail;

pub use mail_address::MailAddress;
pub use message_text::MessageText;
pub use new_mail::NewMail;
