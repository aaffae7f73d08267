//! One module per endpoint. `/health` and `/ready` come from `service_kit`.

mod authenticate;
mod register;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use contract::paths::authentication;

pub use authenticate::{AuthenticateError, authenticate};
pub use register::{RegisterError, register};

use crate::state::AppState;

/// Adds `POST /authenticate`, `POST /users` and `state`, which they share.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AppState>) {
    cfg.app_data(state)
        .route(authentication::AUTHENTICATE, web::post().to(authenticate))
        .route(authentication::USERS, web::post().to(register));
}

/// How addresses are stored and looked up: without surrounding blanks, in lower case.
fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A 503 tells the client when to try again.
fn with_retry_after(mut response: HttpResponse) -> HttpResponse {
    if response.status() == actix_web::http::StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        assert_eq!(normalize_email("  Admin@Example.COM \n"), "admin@example.com");
        assert_eq!(normalize_email("admin@example.com"), "admin@example.com");
    }
}
