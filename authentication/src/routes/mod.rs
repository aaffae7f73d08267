//! One module per endpoint. `/health` and `/ready` come from `service_kit`.

mod authenticate;
mod register;

use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use contract::paths::authentication;

pub use authenticate::{AuthenticateError, authenticate};
pub use register::{RegisterError, register};

use crate::state::AppState;

/// Adds `POST /authenticate`, `POST /users`, `GET /.well-known/jwks.json` and `state`, which they share.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AppState>) {
    // The Go original's broker posts its credentials without a Content-Type.
    let authenticate_route = web::resource(authentication::AUTHENTICATE)
        .wrap(from_fn(service_kit::http::untyped_body_is_json))
        .route(web::post().to(authenticate));
    cfg.app_data(state)
        .service(authenticate_route)
        .service(web::resource(authentication::USERS).route(web::post().to(register)))
        .service(web::resource(authentication::JWKS).route(web::get().to(jwks)));
}

/// `GET /.well-known/jwks.json`: the public keys of the access tokens, current first.
async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    // Verifiers fetch it on an unknown `kid`; a short cache keeps a rotation visible quickly.
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "max-age=60")).json(state.tokens.jwks())
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
