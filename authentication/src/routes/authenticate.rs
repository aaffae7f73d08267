//! `POST /authenticate {"email", "password"}`: 202 with the user and an access token beside it
//! (`contract::token::SignedIn`), or 401 `invalid credentials`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use contract::auth::Credentials;
use contract::token::SignedIn;
use contract::{Envelope, ValidationError, validate};

use service_kit::metrics::counter;

use super::{normalize_email, with_retry_after};
use crate::metrics;
use crate::password::Refused;
use crate::state::AppState;
use crate::store::StoreError;

#[derive(thiserror::Error)]
pub enum AuthenticateError {
    /// The body has the right shape but a field is unusable (empty, too long, not an address).
    #[error("{0}")]
    InvalidInput(#[from] ValidationError),
    /// Unknown address, wrong password or inactive user: one answer for all three, so that a
    /// caller cannot tell which addresses exist.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("the user database is unavailable, try again shortly")]
    Unavailable(#[source] StoreError),
    /// Every bcrypt worker is busy and the queue is full: a 503 at once, not a late answer.
    #[error("the authentication service is overloaded, try again shortly")]
    Overloaded,
    /// The caller's `Request-Timeout` passed before the password was checked; nobody waits.
    #[error("the request's deadline passed before the password could be checked")]
    DeadlinePassed,
    #[error("authentication failed unexpectedly")]
    Unexpected(#[source] anyhow::Error),
}

impl std::fmt::Debug for AuthenticateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        service_kit::http::error_chain_fmt(self, f)
    }
}

impl From<StoreError> for AuthenticateError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => AuthenticateError::Unavailable(error),
            StoreError::Duplicate | StoreError::Query(_) => AuthenticateError::Unexpected(error.into()),
        }
    }
}

impl From<Refused> for AuthenticateError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Overloaded => AuthenticateError::Overloaded,
            Refused::Expired => AuthenticateError::DeadlinePassed,
            Refused::Failed(error) => AuthenticateError::Unexpected(error),
        }
    }
}

impl ResponseError for AuthenticateError {
    fn status_code(&self) -> StatusCode {
        match self {
            AuthenticateError::InvalidInput(_) => StatusCode::BAD_REQUEST,
            AuthenticateError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            AuthenticateError::Unavailable(_) | AuthenticateError::Overloaded | AuthenticateError::DeadlinePassed => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AuthenticateError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        with_retry_after(service_kit::http::error_response(self))
    }
}

/// Checks the credentials; the password is only ever passed to bcrypt. A `Request-Timeout`
/// that has run out, or runs out while the login waits for a bcrypt worker, is a 503 without
/// a bcrypt run.
#[tracing::instrument(name = "authenticate", skip_all, fields(email = tracing::field::Empty, user_id = tracing::field::Empty))]
pub async fn authenticate(
    request: HttpRequest,
    body: web::Json<validate::JsonBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AuthenticateError> {
    let answer = check(request, body, state).await;
    counter!(metrics::LOGINS, "outcome" => outcome(&answer)).increment(1);
    answer
}

/// The `outcome` label of [`metrics::LOGINS`].
fn outcome(answer: &Result<HttpResponse, AuthenticateError>) -> &'static str {
    match answer {
        Ok(_) => "accepted",
        Err(AuthenticateError::InvalidInput(_)) => "invalid_input",
        Err(AuthenticateError::InvalidCredentials) => "invalid_credentials",
        Err(AuthenticateError::Unavailable(_)) => "unavailable",
        Err(AuthenticateError::Overloaded) => "overloaded",
        Err(AuthenticateError::DeadlinePassed) => "deadline_passed",
        Err(AuthenticateError::Unexpected(_)) => "error",
    }
}

async fn check(
    request: HttpRequest,
    body: web::Json<validate::JsonBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AuthenticateError> {
    let deadline = service_kit::deadline::from_request(&request);
    if deadline.is_some_and(|deadline| deadline <= std::time::Instant::now()) {
        return Err(AuthenticateError::DeadlinePassed);
    }
    let AppState { store, hasher, tokens } = state.get_ref();
    let credentials: Credentials = validate::from_value(body.into_inner().into_inner())?;
    let email = normalize_email(credentials.email.as_str());
    tracing::Span::current().record("email", email.as_str());

    let found = store.find_by_email(&email).await?;
    let (user, stored_hash) = match found {
        Some(stored) => (Some(stored.user), Some(stored.password_hash)),
        None => (None, None),
    };
    // Always one bcrypt run, whether or not the user exists and is active.
    let matches = hasher.verify(credentials.password.into_inner(), stored_hash, deadline).await?;

    let user = match user {
        None => {
            tracing::info!(reason = "unknown email", "login refused");
            return Err(AuthenticateError::InvalidCredentials);
        }
        Some(user) => user,
    };
    tracing::Span::current().record("user_id", user.id);
    if !matches {
        tracing::info!(reason = "wrong password", "login refused");
        return Err(AuthenticateError::InvalidCredentials);
    }
    if !user.active {
        tracing::info!(reason = "inactive user", "login refused");
        return Err(AuthenticateError::InvalidCredentials);
    }
    tracing::info!("login accepted");
    let (token, expires_in) = tokens.issue(&user).map_err(AuthenticateError::Unexpected)?;
    let message = format!("Logged in user {}", user.email);
    let signed_in = SignedIn { user, token: Some(token), expires_in: Some(expires_in) };
    Ok(HttpResponse::Accepted().json(Envelope::with_data(message, signed_in)))
}
