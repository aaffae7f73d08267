//! What the mailer's handlers share: made once at start-up, handed to every worker.

use lettre::message::Mailbox;

use crate::smtp::SmtpMailer;
use crate::templates::Renderer;

pub struct AppState {
    /// The pooled SMTP transport.
    pub mailer: SmtpMailer,
    /// Compiled templates and the CSS inliner.
    pub renderer: Renderer,
    /// `FROM_NAME <FROM_ADDRESS>`, for requests without a `from`.
    pub default_sender: Mailbox,
}
