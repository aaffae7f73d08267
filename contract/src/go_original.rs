//! The Go original's exact bytes at every seam it shares with this system, recorded once in
//! `contract/fixtures/go-micro/` (see the README there) and read here, so that the tests of
//! both sides of a seam (ours as the server, ours as the client) read the same bytes.
//!
//! Only for tests: behind the `go-original-fixtures` feature, which only dev-dependencies turn
//! on. A fixture that does not parse is a broken checkout, so the accessors panic.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::Envelope;

/// One HTTP call of the original: what its client sends and what its server answers.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpExchange {
    /// Which functions of the original write each side, and what its client expects.
    pub about: String,
    pub request: Request,
    pub response: Response,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The headers the original's client sets (no `Host`, `Content-Length`: the transport's).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The exact body.
    pub body: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Response {
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The exact body.
    pub body: String,
}

impl Request {
    /// A header by name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("fixture request body: {e}"))
    }
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as the envelope both systems answer with.
    pub fn envelope(&self) -> Envelope {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("fixture response body: {e}"))
    }
}

fn header<'a>(headers: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
}

/// One AMQP message the original publishes.
#[derive(Debug, Clone, Deserialize)]
pub struct AmqpMessage {
    pub about: String,
    pub exchange: String,
    pub routing_key: String,
    /// `None`: the property is not set.
    #[serde(default)]
    pub content_type: Option<String>,
    /// The exact body.
    pub body: String,
}

fn load<T: DeserializeOwned>(file: &str, text: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("fixture {file} does not parse: {e}"))
}

macro_rules! fixture {
    ($(#[$doc:meta])* $name:ident -> $type:ty, $file:literal) => {
        $(#[$doc])*
        pub fn $name() -> $type {
            load($file, include_str!(concat!("../fixtures/go-micro/", $file)))
        }
    };
}

fixture!(
    /// Broker → authentication, a correct login: 202 with a user whose `active` is `1`.
    authenticate -> HttpExchange, "authenticate.json"
);
fixture!(
    /// Broker → authentication, a wrong password: 400 `invalid credentials`.
    authenticate_wrong_password -> HttpExchange, "authenticate-wrong-password.json"
);
fixture!(
    /// Broker → mailer: 202 `sent to <to>`.
    send -> HttpExchange, "send.json"
);
fixture!(
    /// Listener → logger `POST /log`: 202 `logged`.
    log_from_listener -> HttpExchange, "log-from-listener.json"
);
fixture!(
    /// Authentication → logger `POST /log`, without a Content-Type.
    log_from_authentication -> HttpExchange, "log-from-authentication.json"
);
fixture!(
    /// Broker → RabbitMQ: `{"name","data"}`, `text/plain`, `log.INFO`.
    event -> AmqpMessage, "event.json"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_parses_and_answers_in_the_envelope() {
        for exchange in
            [authenticate(), authenticate_wrong_password(), send(), log_from_listener(), log_from_authentication()]
        {
            assert_eq!(exchange.request.method, "POST", "{}", exchange.about);
            let _: serde_json::Value = exchange.request.json();
            assert_eq!(exchange.response.header("content-type"), Some("application/json"));
            let envelope = exchange.response.envelope();
            assert_eq!(envelope.error, exchange.response.status >= 400, "{}", exchange.about);
        }
        let event = event();
        let body: serde_json::Value = serde_json::from_str(&event.body).unwrap();
        assert_eq!(body.as_object().map(|o| o.len()), Some(2), "only name and data");
    }

    #[test]
    fn the_original_user_reads_as_ours() {
        let envelope = authenticate().response.envelope();
        let user: crate::auth::User = serde_json::from_value(envelope.data.unwrap()).expect("a user");
        assert!(user.active);
        assert_eq!(user.created_at.to_rfc3339(), "2022-03-14T00:00:00+00:00");
    }
}
