//! What the Go original's services answer where ours answer otherwise, and how the broker reads
//! it, so that the broker works unchanged against either and its own answers stay the same.
//!
//! - The original's authentication service refuses wrong credentials with 400
//!   `{"error":true,"message":"invalid credentials"}` where ours answers 401; both mean a
//!   wrong pair, and the broker answers its caller 401 `invalid credentials` for both.
//! - Its user has `"active": 1` and drops empty names: `contract::auth::User` reads both.
//! - Its mailer answers 202 `sent to <to>` as ours does: nothing to translate.

use actix_web::http::StatusCode;

use super::{DownstreamError, Service};

/// The message both authentication services give for a wrong pair.
pub const INVALID_CREDENTIALS: &str = "invalid credentials";

/// True when the authentication service said the credentials are wrong: our 401, or the
/// original's 400 with its `invalid credentials` message (a 400 for anything else, a body it
/// could not read, stays a refusal of the request).
pub fn is_wrong_credentials(error: &DownstreamError) -> bool {
    match error {
        DownstreamError::Rejected { service: Service::Authentication, status, message } => {
            *status == StatusCode::UNAUTHORIZED
                || (*status == StatusCode::BAD_REQUEST && message.trim() == INVALID_CREDENTIALS)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_credentials_are_our_401_or_the_originals_400() {
        let rejected =
            |service, status, message: &str| DownstreamError::Rejected { service, status, message: message.into() };
        let auth = Service::Authentication;
        let cases = [
            (rejected(auth, StatusCode::UNAUTHORIZED, "invalid credentials"), true, "ours"),
            (rejected(auth, StatusCode::BAD_REQUEST, "invalid credentials"), true, "the original's"),
            (rejected(auth, StatusCode::BAD_REQUEST, "unexpected EOF"), false, "the original could not read the body"),
            (
                rejected(Service::Mailer, StatusCode::BAD_REQUEST, "invalid credentials"),
                false,
                "not the authentication service",
            ),
            (DownstreamError::Failed { service: auth, reason: "invalid credentials".into() }, false, "a failure"),
        ];
        for (error, expected, why) in cases {
            assert_eq!(is_wrong_credentials(&error), expected, "{why}");
        }
    }
}
