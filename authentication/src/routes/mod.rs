//! One module per endpoint. `/health` and `/ready` come from `service_kit`.

mod authenticate;
mod register;

use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError, web};
use service_kit::http::BodyError;

pub use authenticate::{AuthenticateError, authenticate};
pub use register::{RegisterError, register};

/// Adds `POST /authenticate` and `POST /users`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/authenticate").app_data(json_config()).route(web::post().to(authenticate)))
        .service(web::resource("/users").app_data(json_config()).route(web::post().to(register)));
}

/// How addresses are stored and looked up: without surrounding blanks, in lower case.
fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// `service_kit`'s JSON limits and statuses (413, 415, 400), except that a value of the wrong
/// type is not quoted back: serde would answer `invalid type: integer `12345`` for a numeric
/// password, and a password never appears in a response.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(service_kit::http::MAX_BODY_BYTES).error_handler(|error, _req| {
        let error = BodyError::from_json_error(&error);
        let message = without_values(&error.to_string());
        let response = service_kit::http::error(error.status_code(), message.clone());
        // The request logger prints the error too: it gets the redacted message only.
        actix_web::error::InternalError::from_response(message, response).into()
    })
}

/// `invalid type: string "x", expected ...` becomes `invalid type: string, expected ...`.
fn without_values(message: &str) -> String {
    for marker in ["invalid type: ", "invalid value: "] {
        let Some(start) = message.find(marker).map(|i| i + marker.len()) else { continue };
        let Some(end) = message[start..].rfind(", expected").map(|i| start + i) else { continue };
        let unexpected = &message[start..end];
        if let Some(quoted) = unexpected.find(['`', '"']) {
            return format!("{}{}{}", &message[..start], unexpected[..quoted].trim_end(), &message[end..]);
        }
    }
    message.to_owned()
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
    fn values_of_the_wrong_type_are_not_quoted_back() {
        let cases = [
            (
                "invalid request: invalid type: integer `12345`, expected a string at line 1 column 30",
                "invalid request: invalid type: integer, expected a string at line 1 column 30",
            ),
            (
                "invalid request: invalid type: string \"yes\", expected a boolean at line 1 column 9",
                "invalid request: invalid type: string, expected a boolean at line 1 column 9",
            ),
            (
                "invalid request: invalid type: floating point `1.5`, expected a string at line 1 column 3",
                "invalid request: invalid type: floating point, expected a string at line 1 column 3",
            ),
            (
                "invalid request: invalid type: null, expected a string at line 1 column 13",
                "invalid request: invalid type: null, expected a string at line 1 column 13",
            ),
            (
                "invalid request: missing field `password` at line 1 column 17",
                "invalid request: missing field `password` at line 1 column 17",
            ),
            (
                r#"invalid request: invalid type: string "a, expected b", expected a boolean at line 1 column 9"#,
                "invalid request: invalid type: string, expected a boolean at line 1 column 9",
            ),
        ];
        for (given, expected) in cases {
            assert_eq!(without_values(given), expected);
        }
    }

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        assert_eq!(normalize_email("  Admin@Example.COM \n"), "admin@example.com");
        assert_eq!(normalize_email("admin@example.com"), "admin@example.com");
    }
}
