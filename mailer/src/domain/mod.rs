//! Parse-don't-validate types: once a value exists, it is safe to put in a mail.

mod mail_address;
mod message_text;
mod new_mail;
mod subject;

pub use mail_address::MailAddress;
pub use message_text::MessageText;
pub use new_mail::NewMail;
pub use subject::Subject;
