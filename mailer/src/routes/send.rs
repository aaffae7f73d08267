//! `POST /send {"from"?, "to", "subject", "message"}` → 202 `"sent to <to>"`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use contract::mail::MailPayload;
use contract::{Envelope, ValidationError, validate};

use crate::smtp::SmtpError;
use crate::state::AppState;

/// The outcomes of a send a caller can act on.
#[derive(thiserror::Error)]
pub enum SendError {
    /// A field is missing or malformed; the message names it. 400.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The SMTP server is down, refused the mail (502) or did not answer in time (504).
    #[error(transparent)]
    Smtp(#[from] SmtpError),
    /// The templates or the message builder failed: a bug, not the caller's fault. 500.
    #[error("the mail could not be composed")]
    Compose(#[source] anyhow::Error),
}

impl std::fmt::Debug for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        service_kit::http::error_chain_fmt(self, f)
    }
}

impl ResponseError for SendError {
    fn status_code(&self) -> StatusCode {
        match self {
            SendError::Invalid(_) => StatusCode::BAD_REQUEST,
            SendError::Smtp(SmtpError::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
            SendError::Smtp(SmtpError::Unreachable(_) | SmtpError::Refused { .. }) => StatusCode::BAD_GATEWAY,
            SendError::Compose(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        service_kit::http::error_response(self)
    }
}

#[tracing::instrument(name = "send mail", skip_all, fields(to = tracing::field::Empty))]
pub async fn send(body: web::Json<validate::JsonBody>, state: web::Data<AppState>) -> Result<HttpResponse, SendError> {
    let payload: MailPayload = validate::from_value(body.into_inner().into_inner())?;
    tracing::Span::current().record("to", payload.to.as_str());
    let (mail, message) = state.compose(payload).map_err(SendError::Compose)?;
    state.mailer.send(message).await?;
    tracing::info!("mail sent");
    Ok(HttpResponse::Accepted().json(Envelope::ok(format!("sent to {}", mail.to))))
}
