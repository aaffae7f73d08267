//! Protected actions: the actions named in `PROTECTED_ACTIONS` (default `logs,mail`) need an
//! `Authorization: Bearer <token>` signed by the authentication service.
//!
//! Tokens are verified here, against the JWKS the authentication service publishes: fetched
//! on the first token, cached, and fetched again only when a token names an unknown `kid` (a
//! rotation). Those refetches are at most one per `JWKS_REFRESH_INTERVAL_MS`, so a flood of
//! bogus `kid`s costs the authentication service one request per interval, and each fetch has
//! a timeout (`JWKS_TIMEOUT_MS`). No call to it per request.
//!
//! A refused token is a 401 with `WWW-Authenticate: Bearer` (RFC 6750 `error` and
//! `error_description`) and an envelope message naming the reason.
//!
//! A token sent with an open action is verified too, and its `sub` recorded: a bad one is a 401
//! as on a protected action (RFC 6750 §3.1: an invalid token is refused wherever it is sent),
//! so that a client learns its token is stale instead of acting anonymously unawares. The one
//! exception is `auth`: signing in is how a client replaces a bad token, so its header is not
//! read.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use contract::handle::HandleRequest;
use contract::token::Claims;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Deserializer};
use service_kit::settings;
use tokio::sync::{Mutex, RwLock};

/// `PROTECTED_ACTIONS` and how tokens are checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ProtectSettings {
    /// The actions that need a token, comma-separated; `none` protects nothing (the Go
    /// original's open behaviour, for the course demo).
    #[serde(rename = "PROTECTED_ACTIONS", deserialize_with = "actions")]
    pub protected_actions: Vec<String>,
    /// The `iss` and `aud` a token must carry; the authentication service signs the same.
    #[serde(rename = "TOKEN_ISSUER")]
    pub issuer: String,
    #[serde(rename = "TOKEN_AUDIENCE")]
    pub audience: String,
    /// The longest one JWKS fetch may take.
    #[serde(rename = "JWKS_TIMEOUT_MS", deserialize_with = "settings::positive_millis")]
    pub jwks_timeout: Duration,
    /// The least time between two JWKS fetches caused by unknown `kid`s.
    #[serde(rename = "JWKS_REFRESH_INTERVAL_MS", deserialize_with = "settings::millis")]
    pub jwks_refresh_interval: Duration,
}

/// The action that issues tokens; it never reads one.
const SIGN_IN: &str = "auth";

/// What a broker started with no settings protects.
pub const DEFAULT_PROTECTED_ACTIONS: [&str; 2] = ["logs", "mail"];

impl Default for ProtectSettings {
    fn default() -> Self {
        Self {
            protected_actions: DEFAULT_PROTECTED_ACTIONS.map(String::from).into(),
            issuer: contract::token::DEFAULT_ISSUER.into(),
            audience: contract::token::DEFAULT_AUDIENCE.into(),
            jwks_timeout: Duration::from_secs(2),
            jwks_refresh_interval: Duration::from_secs(10),
        }
    }
}

impl ProtectSettings {
    /// The open course mode: no action needs a token.
    pub fn open() -> Self {
        Self { protected_actions: Vec::new(), ..Self::default() }
    }
}

fn actions<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let names = settings::list(deserializer)?;
    if names == ["none"] {
        return Ok(Vec::new());
    }
    match names.iter().find(|name| !HandleRequest::ACTIONS.contains(&name.as_str())) {
        Some(unknown) => Err(serde::de::Error::custom(format!(
            "unknown action {unknown:?}; expected `none` or some of {}",
            HandleRequest::ACTIONS.join(", ")
        ))),
        None if names.is_empty() => Err(serde::de::Error::custom("empty; write `none` to protect nothing")),
        None => Ok(names),
    }
}

/// Why a request's token was refused; the message tells the caller what to fix.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "action {0:?} needs a token: sign in with the auth action and send its data.token as `Authorization: Bearer <token>`"
    )]
    Missing(&'static str),
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token has expired; sign in again")]
    Expired,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token is for another audience")]
    WrongAudience,
    #[error("the token is from another issuer")]
    WrongIssuer,
    #[error("the token is signed with an unknown key")]
    UnknownKey,
    /// Not the caller's fault: the keys could not be fetched. A 503, so the caller retries.
    #[error("cannot verify tokens now: the authentication service's keys are unavailable ({0})")]
    KeysUnavailable(String),
}

impl TokenError {
    pub fn status(&self) -> StatusCode {
        match self {
            TokenError::KeysUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// RFC 6750 §3: no `error` when no token was sent, `invalid_token` otherwise.
    pub fn challenge(&self) -> Option<HeaderValue> {
        let value = match self {
            TokenError::KeysUnavailable(_) => return None,
            TokenError::Missing(_) => r#"Bearer realm="broker""#.to_owned(),
            TokenError::NotBearer => r#"Bearer realm="broker", error="invalid_request", error_description="the Authorization header is not Bearer""#.to_owned(),
            other => format!(r#"Bearer realm="broker", error="invalid_token", error_description="{other}""#),
        };
        HeaderValue::from_str(&value).ok()
    }

    /// Adds the challenge (401) or `Retry-After` (503) to an answer made from this error.
    pub fn decorate(&self, response: &mut HttpResponse) {
        if let Some(challenge) = self.challenge() {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
        } else {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
    }
}

/// Verifies bearer tokens against the cached JWKS.
pub struct TokenVerifier {
    settings: ProtectSettings,
    /// `{AUTH_URL}/.well-known/jwks.json`.
    jwks_url: String,
    http: reqwest::Client,
    /// The keys by `kid`, from the last fetch.
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// When the last fetch was made; one fetch at a time (the lock), at most one per interval.
    last_fetch: Mutex<Option<Instant>>,
    validation: Validation,
}

impl TokenVerifier {
    pub fn new(settings: ProtectSettings, auth_url: &str, http: reqwest::Client) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[&settings.audience]);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        Self {
            jwks_url: format!("{auth_url}{}", contract::paths::authentication::JWKS),
            settings,
            http,
            keys: RwLock::default(),
            last_fetch: Mutex::new(None),
            validation,
        }
    }

    /// Whether `action` needs a token.
    pub fn protects(&self, action: &str) -> bool {
        self.settings.protected_actions.iter().any(|name| name == action)
    }

    /// The claims of the request's token: required if `action` is protected, verified if sent
    /// with any other action but `auth` (see the module doc); `None` without a token.
    pub async fn check(&self, request: &HttpRequest, action: &'static str) -> Result<Option<Claims>, TokenError> {
        if action == SIGN_IN {
            return Ok(None);
        }
        let Some(value) = request.headers().get(header::AUTHORIZATION) else {
            return if self.protects(action) { Err(TokenError::Missing(action)) } else { Ok(None) };
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or(TokenError::NotBearer)?;
        self.verify(token).await.map(Some)
    }

    /// Verifies one token: its key by `kid`, signature, `exp`, `iss` and `aud`.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::BadSignature);
        }
        let cached = self.keys.read().await.get(&kid).cloned();
        let key = match cached {
            Some(key) => key,
            None => {
                self.refresh().await?;
                self.keys.read().await.get(&kid).cloned().ok_or(TokenError::UnknownKey)?
            }
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation).map_err(|error| {
            use jsonwebtoken::errors::ErrorKind;
            match error.kind() {
                ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => TokenError::Expired,
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => TokenError::BadSignature,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                _ => TokenError::Malformed,
            }
        })?;
        Ok(data.claims)
    }

    /// Fetches the JWKS unless another fetch was made within the interval (or is running:
    /// waiters then see its result). The first fetch is never held back.
    async fn refresh(&self) -> Result<(), TokenError> {
        let mut last_fetch = self.last_fetch.lock().await;
        if last_fetch.is_some_and(|at| at.elapsed() < self.settings.jwks_refresh_interval) {
            return Ok(());
        }
        let fetched = self.fetch().await;
        // A failed fetch is rate-bound too, so that a down authentication service is not hammered.
        *last_fetch = Some(Instant::now());
        let set = fetched?;
        let keys: HashMap<_, _> = set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
            .collect();
        tracing::info!(keys = keys.len(), url = %self.jwks_url, "fetched the token keys");
        *self.keys.write().await = keys;
        Ok(())
    }

    async fn fetch(&self) -> Result<JwkSet, TokenError> {
        let unavailable = |error: reqwest::Error| TokenError::KeysUnavailable(service_kit::http::error_chain(&error));
        let response =
            self.http.get(&self.jwks_url).timeout(self.settings.jwks_timeout).send().await.map_err(unavailable)?;
        let response = response.error_for_status().map_err(unavailable)?;
        response.json::<JwkSet>().await.map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use service_kit::settings::Env;

    use super::*;

    fn read(value: &str) -> Result<ProtectSettings, service_kit::settings::SettingsError> {
        Env::from_pairs([("PROTECTED_ACTIONS", value)]).read(0, &[])
    }

    #[test]
    fn protected_actions_default_to_logs_and_mail_and_none_opens_all() {
        let defaults: ProtectSettings = Env::default().read(0, &[]).unwrap();
        assert_eq!(defaults.protected_actions, ["logs", "mail"]);
        assert!(read("none").unwrap().protected_actions.is_empty());
        assert_eq!(read("log, event").unwrap().protected_actions, ["log", "event"]);
    }

    #[test]
    fn an_unknown_or_empty_action_list_is_refused() {
        for value in ["logz", ",", "none,log"] {
            assert_eq!(read(value).unwrap_err().key, "PROTECTED_ACTIONS", "{value:?}");
        }
    }

    #[test]
    fn the_challenge_follows_rfc_6750() {
        let missing = TokenError::Missing("logs").challenge().unwrap();
        assert_eq!(missing, r#"Bearer realm="broker""#);
        let expired = TokenError::Expired.challenge().unwrap();
        assert!(expired.to_str().unwrap().contains(r#"error="invalid_token""#), "{expired:?}");
    }
}
