//! Access tokens: an EdDSA (Ed25519) JWT signed on every successful login, and the JWKS that
//! lets the broker verify it without calling us per request.
//!
//! The signing key comes from `TOKEN_SIGNING_KEY` (a PKCS#8 PEM) or the file named by
//! `TOKEN_SIGNING_KEY_FILE`; without either a key is generated at start (fine for a local run,
//! but tokens die with the process and replicas would not share it; the log says so).
//! Rotation: the old key goes to `TOKEN_PREVIOUS_KEY` (its private or public PEM). It is
//! published in the JWKS beside the current one, so tokens it signed verify until they expire.
//! Each key's `kid` is its RFC 7638 thumbprint: stable, and the same on every replica.

use anyhow::Context;
use contract::auth::User;
use contract::token::Claims;
use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use service_kit::ExposeSecret;

use crate::settings::TokenSettings;

/// Signs access tokens and holds the JWKS document.
pub struct TokenSigner {
    /// The current private key; never printed.
    key: EncodingKey,
    /// The current key's id, sent in every token's header.
    kid: String,
    /// `GET /.well-known/jwks.json`: the current key, then the previous one if any.
    jwks: JwkSet,
    /// Seconds a token stays valid.
    ttl_secs: u64,
    issuer: String,
    audience: String,
}

/// An Ed25519 private key as PKCS#8 v1 DER (RFC 8410): this fixed prefix, then the 32-byte seed.
const PKCS8_ED25519_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

impl TokenSigner {
    pub fn new(settings: &TokenSettings) -> anyhow::Result<Self> {
        let key = match (&settings.signing_key, &settings.signing_key_file) {
            (Some(pem), _) => EncodingKey::from_ed_pem(pem.expose_secret().as_bytes())
                .context("TOKEN_SIGNING_KEY is not an Ed25519 private key in PKCS#8 PEM")?,
            (None, Some(path)) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("cannot read TOKEN_SIGNING_KEY_FILE {}", path.display()))?;
                EncodingKey::from_ed_pem(&pem).with_context(|| {
                    format!("TOKEN_SIGNING_KEY_FILE {} is not an Ed25519 private key in PKCS#8 PEM", path.display())
                })?
            }
            (None, None) => {
                let mut der = PKCS8_ED25519_PREFIX.to_vec();
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(|error| anyhow::anyhow!("no randomness for a key: {error}"))?;
                der.extend_from_slice(&seed);
                EncodingKey::from_ed_der(&der)
            }
        };
        let current = public_jwk(Jwk::from_encoding_key(&key, Algorithm::EdDSA)?)?;
        let kid = current.common.key_id.clone().unwrap_or_default();
        if settings.signing_key.is_none() && settings.signing_key_file.is_none() {
            tracing::warn!(%kid, "no TOKEN_SIGNING_KEY or TOKEN_SIGNING_KEY_FILE given: generated a signing key \
                for this run; its tokens stop verifying when the service restarts");
        }
        let mut keys = vec![current];
        if let Some(pem) = &settings.previous_key {
            keys.push(public_jwk(previous_jwk(pem.expose_secret().as_bytes())?)?);
        }
        Ok(Self {
            key,
            kid,
            jwks: JwkSet { keys },
            ttl_secs: settings.ttl_secs,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
        })
    }

    /// A token for `user`, valid for the configured time from now; with its lifetime in seconds.
    pub fn issue(&self, user: &User) -> anyhow::Result<(String, u64)> {
        let now = chrono::Utc::now().timestamp();
        let ttl = self.ttl_secs;
        let claims = Claims {
            sub: user.id.to_string(),
            email: user.email.clone(),
            iat: now,
            exp: now + i64::try_from(ttl).unwrap_or(i64::MAX / 2),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let header = Header { kid: Some(self.kid.clone()), ..Header::new(Algorithm::EdDSA) };
        let token = jsonwebtoken::encode(&header, &claims, &self.key).context("cannot sign the access token")?;
        Ok((token, ttl))
    }

    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// The previous key may be given as its private PEM (simplest when rotating) or its public one.
fn previous_jwk(pem: &[u8]) -> anyhow::Result<Jwk> {
    if let Ok(key) = EncodingKey::from_ed_pem(pem) {
        return Ok(Jwk::from_encoding_key(&key, Algorithm::EdDSA)?);
    }
    let key = DecodingKey::from_ed_pem(pem).context("TOKEN_PREVIOUS_KEY is not an Ed25519 key in PEM")?;
    Ok(Jwk::from_decoding_key(&key, Some(Algorithm::EdDSA))?)
}

/// Names the key by its thumbprint and says what it is for.
fn public_jwk(mut jwk: Jwk) -> anyhow::Result<Jwk> {
    jwk.common.key_id = Some(jwk.thumbprint(ThumbprintHash::SHA256)?);
    jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
    Ok(jwk)
}

/// Fixed Ed25519 keys for tests (made with `openssl genpkey -algorithm ed25519`). Public, so
/// never configure them outside a test: they are not in a build without the `testing` feature.
#[cfg(any(test, feature = "testing"))]
pub mod test_keys {
    pub const FIRST: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBneMfOly8jkp4FsMLJT2bt50rBQByXTmWMaZgy1rs5Z\n-----END PRIVATE KEY-----\n";
    /// `FIRST`'s public half.
    pub const FIRST_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAhQmj5+HUy3H5dkv5pBJeDRZ1M06Tv1j7LYO2Ks3d7f4=\n-----END PUBLIC KEY-----\n";
    pub const SECOND: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEICDlGebuFGMZOrD3gP5RPbNyNRhOYhauvH5ko4qI1Bex\n-----END PRIVATE KEY-----\n";
    pub const THIRD: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFOq5VIcEDKZgnkiY8r2HFMZwmXH2HWnNlfOJshkuhiG\n-----END PRIVATE KEY-----\n";
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Validation;

    use super::*;

    fn user() -> User {
        let now = chrono::Utc::now();
        User {
            id: 7,
            email: "a@example.com".into(),
            first_name: String::new(),
            last_name: String::new(),
            active: true,
            created_at: now,
            updated_at: now,
        }
    }

    fn verify_with_jwks(signer: &TokenSigner, token: &str) -> Claims {
        let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
        let jwk = signer.jwks().find(&kid).expect("the token's kid is in the JWKS");
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&["broker"]);
        validation.set_issuer(&["authentication"]);
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap().claims
    }

    #[test]
    fn a_generated_key_signs_tokens_that_its_jwks_verifies() {
        let signer = TokenSigner::new(&TokenSettings::default()).unwrap();
        let (token, ttl) = signer.issue(&user()).unwrap();
        let claims = verify_with_jwks(&signer, &token);
        assert_eq!((claims.sub.as_str(), claims.email.as_str(), ttl), ("7", "a@example.com", 900));
        assert_eq!(claims.exp - claims.iat, 900);
        assert!(!claims.jti.is_empty());
        assert_eq!(signer.jwks().keys.len(), 1);
        // Two starts without a key: two different keys.
        assert_ne!(TokenSigner::new(&TokenSettings::default()).unwrap().kid(), signer.kid());
    }

    #[test]
    fn the_previous_key_is_published_beside_the_current_one_given_either_half() {
        for previous in [test_keys::FIRST, test_keys::FIRST_PUBLIC] {
            let settings = TokenSettings {
                signing_key: Some(test_keys::SECOND.into()),
                previous_key: Some(previous.into()),
                ..TokenSettings::default()
            };
            let rotated = TokenSigner::new(&settings).unwrap();
            let old =
                TokenSigner::new(&TokenSettings { signing_key: Some(test_keys::FIRST.into()), ..settings }).unwrap();
            let kids: Vec<_> = rotated.jwks().keys.iter().filter_map(|key| key.common.key_id.clone()).collect();
            assert_eq!(kids, [rotated.kid(), old.kid()]);
            let (old_token, _) = old.issue(&user()).unwrap();
            assert_eq!(verify_with_jwks(&rotated, &old_token).sub, "7");
        }
    }

    #[test]
    fn a_key_that_is_not_an_ed25519_pem_is_refused_by_name() {
        let settings = TokenSettings { signing_key: Some("not a key".into()), ..TokenSettings::default() };
        let error = TokenSigner::new(&settings).err().unwrap();
        assert!(error.to_string().contains("TOKEN_SIGNING_KEY"), "{error}");
        let settings = TokenSettings { previous_key: Some("not a key".into()), ..TokenSettings::default() };
        let error = format!("{:#}", TokenSigner::new(&settings).err().unwrap());
        assert!(error.contains("TOKEN_PREVIOUS_KEY"), "{error}");
    }
}
