//! Access tokens: the claims of the JWT the authentication service signs on a login and the
//! broker verifies, and what a successful login answers with. The JWKS document itself is
//! RFC 7517's, in `jsonwebtoken::jwk::JwkSet`, on both sides.

use serde::{Deserialize, Serialize};

use crate::auth::User;

/// The issuer and audience both sides use unless `TOKEN_ISSUER` / `TOKEN_AUDIENCE` say otherwise.
pub const DEFAULT_ISSUER: &str = "authentication";
pub const DEFAULT_AUDIENCE: &str = "broker";

/// The claims of an access token (RFC 7519 names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id, as a string (RFC 7519 `sub` is a string).
    pub sub: String,
    pub email: String,
    /// Issued at and expiry, seconds since the Unix epoch.
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    /// A unique id per token, so that one can be told apart (and later revoked).
    pub jti: String,
}

/// `data` of a successful login: the user's fields, and beside them the token. Old clients
/// read the user's fields and ignore the rest; the Go original sends no token (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedIn {
    #[serde(flatten)]
    pub user: User,
    /// The access token (a JWT) to send as `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Seconds the token stays valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_login_answer_still_reads_as_a_user_and_without_a_token() {
        let user = json!({"id": 1, "email": "a@b.c", "first_name": "", "last_name": "", "active": true,
            "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"});
        let signed: SignedIn = serde_json::from_value(user.clone()).unwrap();
        assert_eq!(signed.token, None);
        let mut with_token =
            serde_json::to_value(SignedIn { token: Some("t".into()), expires_in: Some(9), ..signed }).unwrap();
        assert_eq!(with_token["token"], "t");
        let old_client: User = serde_json::from_value(with_token.clone()).unwrap();
        assert_eq!(old_client.email, "a@b.c");
        with_token.as_object_mut().unwrap().retain(|key, _| key != "token" && key != "expires_in");
        assert_eq!(with_token, user);
    }
}
