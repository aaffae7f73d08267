//! Protected actions and their tokens: the default protects `logs` and `mail`; a login's token
//! opens them; every bad token is a 401 saying why; a rotated key's tokens stay valid.

use authentication::tokens::{TokenSigner, test_keys};
use broker::protect::ProtectSettings;
use contract::token::Claims;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use service_kit::testing::{MailCatcher, TestPostgres};
use service_kit::{Env, HttpSettings};

use crate::helpers::{Answer, TestApp, settings_with_downstreams_down, spawn_broker};
use crate::stack::spawn_stack_with;

fn logs() -> Value {
    json!({"action": "logs", "logs": {"limit": 5}})
}

fn mail() -> Value {
    json!({"action": "mail", "mail": {"to": MailCatcher::unique_address(), "subject": "s", "message": "m"}})
}

/// A 401 with an RFC 6750 challenge and `expected` in the message.
fn assert_refused(answer: &Answer, expected: &str, case: &str) {
    assert_eq!(answer.status, 401, "{case}: {}", answer.body);
    assert!(answer.message().contains(expected), "{case}: {}", answer.body);
    let challenge = answer.headers.get("www-authenticate").map(|value| value.to_str().unwrap().to_owned());
    assert!(challenge.as_deref().is_some_and(|value| value.starts_with("Bearer ")), "{case}: {challenge:?}");
}

#[test]
fn the_default_settings_protect_logs_and_mail() {
    assert_eq!(broker::Settings::default().protect.protected_actions, ["logs", "mail"]);
}

#[tokio::test]
async fn a_default_broker_refuses_logs_and_mail_without_a_token_and_serves_them_with_a_login_token() {
    let stack = spawn_stack_with(|settings| settings.protect = ProtectSettings::default()).await;
    let broker = &stack.broker;
    for body in [logs(), mail()] {
        let answer = broker.handle(&body).await;
        assert_refused(&answer, "needs a token", &body["action"].to_string());
        assert!(answer.message().contains("Authorization: Bearer"), "{}", answer.body);
    }
    // Unprotected actions stay open.
    let log = json!({"action": "log", "log": {"name": "open", "data": "no token needed"}});
    assert_eq!(broker.handle(&log).await.status, 202);

    let login = json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}});
    let answer = broker.handle(&login).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body["data"]["email"], "admin@example.com", "the user's fields are still in data");
    assert_eq!(answer.body["data"]["expires_in"], 900);
    let token = answer.body["data"]["token"].as_str().expect("a token beside the user").to_owned();

    // The JWKS the authentication service publishes verifies it, with the documented claims.
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(format!("{}/.well-known/jwks.json", broker.settings.auth_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).expect("the token's kid is published")).unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["broker"]);
    let claims = jsonwebtoken::decode::<Claims>(&token, &key, &validation).unwrap().claims;
    assert_eq!((claims.email.as_str(), claims.iss.as_str()), ("admin@example.com", "authentication"));
    assert_eq!(claims.sub, answer.body["data"]["id"].to_string());

    let bearer = format!("Bearer {token}");
    let answer = broker.handle_authorized(&logs(), &bearer).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = broker.handle_authorized(&mail(), &bearer).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    stack.cleanup().await;
}

/// An authentication service signing with `SECOND`, `FIRST` being the key before the rotation,
/// and a broker protecting the default actions in front of it (its logger is down: a token that
/// passes gets the logger's 502/504, never a 401).
async fn rotated_authentication() -> (TestApp, TestPostgres) {
    let postgres = TestPostgres::create().await;
    let env = Env::from_pairs([
        ("DSN", postgres.url.as_str()),
        ("BCRYPT_COST", "4"),
        ("TOKEN_SIGNING_KEY", test_keys::SECOND),
        ("TOKEN_PREVIOUS_KEY", test_keys::FIRST),
    ]);
    let mut settings = authentication::Settings::from_env(&env).expect("authentication settings");
    settings.http = HttpSettings::ephemeral();
    let auth = authentication::Application::build(settings).await.expect("authentication starts");
    let mut settings = settings_with_downstreams_down();
    settings.auth_url = format!("http://127.0.0.1:{}", auth.port());
    settings.protect = ProtectSettings::default();
    tokio::spawn(auth.run_until_stopped());
    (spawn_broker(settings).await, postgres)
}

fn kid_of(pem: &str) -> String {
    let settings = authentication::settings::TokenSettings { signing_key: Some(pem.into()), ..Default::default() };
    TokenSigner::new(&settings).unwrap().kid().to_owned()
}

fn claims(ttl: i64) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: "1".into(),
        email: "admin@example.com".into(),
        iat: now,
        exp: now + ttl,
        iss: "authentication".into(),
        aud: "broker".into(),
        jti: uuid::Uuid::new_v4().to_string(),
    }
}

fn sign(pem: &str, kid: &str, claims: &Claims) -> String {
    let header = Header { kid: Some(kid.into()), ..Header::new(Algorithm::EdDSA) };
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap()).unwrap()
}

#[tokio::test]
async fn each_bad_token_gets_a_401_that_says_why_and_a_rotated_keys_tokens_stay_valid() {
    let (broker, _postgres) = rotated_authentication().await;
    let (first, second) = (kid_of(test_keys::FIRST), kid_of(test_keys::SECOND));
    let valid = sign(test_keys::SECOND, &second, &claims(300));
    let (head, rest) = valid.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let other_payload = sign(test_keys::SECOND, &second, &Claims { sub: "2".into(), ..claims(300) });
    let tampered = format!("{head}.{}.{signature}", other_payload.split('.').nth(1).unwrap());

    let refused = [
        ("tampered claims", format!("Bearer {tampered}"), "signature does not verify"),
        ("expired", format!("Bearer {}", sign(test_keys::SECOND, &second, &claims(-120))), "expired"),
        (
            "wrong audience",
            format!("Bearer {}", sign(test_keys::SECOND, &second, &Claims { aud: "mailer".into(), ..claims(300) })),
            "another audience",
        ),
        ("a key nobody published", format!("Bearer {}", sign(test_keys::THIRD, "k3", &claims(300))), "unknown key"),
        (
            "a foreign key under a known kid",
            format!("Bearer {}", sign(test_keys::THIRD, &second, &claims(300))),
            "signature does not verify",
        ),
        ("not a JWT", "Bearer not-a-token".into(), "not a well-formed JWT"),
        ("not Bearer", "Basic YWRtaW46dmVyeXNlY3JldA==".into(), "not `Bearer <token>`"),
    ];
    for (case, authorization, expected) in refused {
        assert_refused(&broker.handle_authorized(&logs(), &authorization).await, expected, case);
    }

    // The current key's and the previous key's tokens pass the check (and reach the logger,
    // which is down here).
    for (case, token) in [("current key", valid), ("previous key", sign(test_keys::FIRST, &first, &claims(300)))] {
        let answer = broker.handle_authorized(&logs(), &format!("Bearer {token}")).await;
        assert!(matches!(answer.status, 502 | 504), "{case}: {}", answer.body);
        assert!(answer.message().contains("logger"), "{case}: {}", answer.body);
    }
}

#[tokio::test]
async fn a_flood_of_unknown_kids_costs_one_bounded_jwks_fetch() {
    let keys = crate::helpers::HangingServer::start().await;
    let mut settings = settings_with_downstreams_down();
    settings.auth_url = format!("http://{}", keys.addr);
    settings.protect =
        ProtectSettings { jwks_timeout: std::time::Duration::from_millis(300), ..ProtectSettings::default() };
    let broker = spawn_broker(settings).await;

    // The first token makes the one fetch, which times out: 503, the keys are unavailable.
    let bogus = |n: usize| format!("Bearer {}", sign(test_keys::THIRD, &format!("bogus-{n}"), &claims(300)));
    let answer = broker.handle_authorized(&logs(), &bogus(0)).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(answer.message().contains("keys are unavailable"), "{}", answer.body);
    assert!(answer.headers.contains_key("retry-after"));
    // Within the refresh interval the others are refused without another fetch.
    for n in 1..20 {
        assert_refused(&broker.handle_authorized(&logs(), &bogus(n)).await, "unknown key", "a bogus kid");
    }
    assert_eq!(keys.connections(), 1, "one JWKS fetch for twenty unknown kids");
}
