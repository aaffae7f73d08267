//! `POST /users`: registers a user, so that demos and tests need no SQL.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use contract::auth::NewUser;
use contract::{Envelope, ValidationError, validate};

use super::{normalize_email, with_retry_after};
use crate::state::AppState;
use crate::store::{StoreError, UserRecord};

#[derive(thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    InvalidInput(#[from] ValidationError),
    #[error("a user with the e-mail address {0} already exists")]
    Duplicate(String),
    #[error("the user database is unavailable, try again shortly")]
    Unavailable(#[source] StoreError),
    #[error("registration failed unexpectedly")]
    Unexpected(#[source] anyhow::Error),
}

impl std::fmt::Debug for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        service_kit::http::error_chain_fmt(self, f)
    }
}

impl ResponseError for RegisterError {
    fn status_code(&self) -> StatusCode {
        match self {
            RegisterError::InvalidInput(_) => StatusCode::BAD_REQUEST,
            RegisterError::Duplicate(_) => StatusCode::CONFLICT,
            RegisterError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            RegisterError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        with_retry_after(service_kit::http::error_response(self))
    }
}

/// 201 `created user <email>` with the user (never the hash); 409 when the address is taken.
#[tracing::instrument(name = "register user", skip_all, fields(email = tracing::field::Empty, user_id = tracing::field::Empty))]
pub async fn register(
    body: web::Json<validate::JsonBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RegisterError> {
    let AppState { store, hasher, .. } = state.get_ref();
    let new_user: NewUser = validate::from_value(body.into_inner().into_inner())?;
    let email = normalize_email(new_user.email.as_str());
    tracing::Span::current().record("email", email.as_str());

    let password_hash = hasher.hash(new_user.password.into_inner()).await.map_err(RegisterError::Unexpected)?;
    let record = UserRecord {
        email: &email,
        first_name: new_user.first_name.as_str().trim(),
        last_name: new_user.last_name.as_str().trim(),
        password_hash: &password_hash,
        active: new_user.active,
    };
    let user = store.insert(&record).await.map_err(|error| match error {
        StoreError::Duplicate => RegisterError::Duplicate(email.clone()),
        StoreError::Unavailable(_) => RegisterError::Unavailable(error),
        StoreError::Query(_) => RegisterError::Unexpected(error.into()),
    })?;
    tracing::Span::current().record("user_id", user.id);
    tracing::info!("user registered");
    let message = format!("created user {}", user.email);
    Ok(HttpResponse::Created().json(Envelope::with_data(message, user)))
}
