//! What the handlers share: made once at start-up, handed to every worker and to the consumer
//! of queued mail jobs.

use std::sync::Arc;

use contract::mail::MailPayload;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};

use crate::domain::NewMail;
use crate::smtp::SmtpMailer;
use crate::templates::Renderer;

/// Cheap to clone: the HTTP side and the job consumer each hold one.
#[derive(Clone)]
pub struct AppState {
    /// The pooled SMTP transport.
    pub mailer: SmtpMailer,
    /// Compiled templates and the CSS inliner.
    pub renderer: Arc<Renderer>,
    /// `FROM_NAME <FROM_ADDRESS>`, for requests without a `from`.
    pub default_sender: Mailbox,
}

impl AppState {
    /// The whole message of `payload`, as `/send` and a queued job both send it: headers from
    /// the parsed fields, a `multipart/alternative` body from the templates. An error is a bug
    /// (templates, message builder), never the caller's fault.
    pub fn compose(&self, payload: MailPayload) -> anyhow::Result<(NewMail, Message)> {
        let mail = NewMail::new(payload, &self.default_sender);
        let body = self.renderer.render(&mail)?;
        let message = Message::builder()
            .from(mail.from.clone())
            .to(Mailbox::new(None, mail.to.clone().into_inner()))
            .subject(mail.subject.as_ref())
            .message_id(None)
            .multipart(MultiPart::alternative_plain_html(body.plain, body.html))?;
        Ok((mail, message))
    }
}
