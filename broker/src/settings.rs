//! The broker's settings: where its four downstreams are and how long each hop may take.

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use service_kit::amqp::QueueType;
use service_kit::settings::{self, Env, HttpSettings, SecretList, SettingsError};
use service_kit::wiring;

/// Everything the broker reads at start-up, each field from the variable it is renamed to.
/// Tests build it directly (port 0, their own downstreams) rather than through the environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Where the broker listens (`HOST`, `PORT`, default 8080).
    pub http: HttpSettings,
    /// Base URL of the authentication service, without a trailing slash.
    #[serde(rename = "AUTH_URL", deserialize_with = "base_url")]
    pub auth_url: String,
    /// `host:port` of the logger's tarpc server.
    #[serde(rename = "LOGGER_RPC_ADDR")]
    pub logger_rpc_addr: String,
    /// Base URL of the mailer, without a trailing slash.
    #[serde(rename = "MAILER_URL", deserialize_with = "base_url")]
    pub mailer_url: String,
    /// RabbitMQ, where `event` actions and login events are published: one AMQP URL, or the
    /// comma-separated URLs of a cluster's nodes, tried in turn; they may carry credentials.
    /// One variable rather than a second `RABBIT_URLS`: a single URL is a list of one, and no
    /// rule is needed for which of two variables wins.
    #[serde(rename = "RABBIT_URL")]
    pub rabbit_url: SecretList,
    /// The topic exchange events go to (`logs_topic`); tests use a unique one each.
    #[serde(rename = "EXCHANGE")]
    pub exchange: String,
    /// The listeners' shared queue (`logs`). The broker declares it too, so that an event
    /// accepted before any listener ever ran is queued, not dropped by an unbound exchange.
    #[serde(rename = "QUEUE_NAME")]
    pub queue: String,
    /// The exchange a mail is queued on while the mailer is down (`mail`).
    #[serde(rename = "MAIL_EXCHANGE")]
    pub mail_exchange: String,
    /// The mailers' shared queue of mail jobs (`mail`), declared here for the same reason.
    #[serde(rename = "MAIL_QUEUE")]
    pub mail_queue: String,
    /// `classic` (default: one node) or `quorum` (a cluster) for that queue and its dead
    /// letters (`QUEUE_TYPE`); the listeners must say the same.
    #[serde(rename = "QUEUE_TYPE")]
    pub queue_type: QueueType,
    /// Browser origins allowed to call the broker (CORS), comma-separated.
    #[serde(rename = "CORS_ALLOWED_ORIGINS", deserialize_with = "settings::list")]
    pub cors_allowed_origins: Vec<String>,
    /// The longest the broker waits for each hop; past it the caller gets a 504. Each action
    /// makes one hop, so this is also the request's budget: a REST hop is told what is left
    /// of it (`Request-Timeout`), the logger gets it as the tarpc deadline.
    #[serde(rename = "AUTH_TIMEOUT_MS", deserialize_with = "settings::positive_millis")]
    pub auth_timeout: Duration,
    #[serde(rename = "LOGGER_TIMEOUT_MS", deserialize_with = "settings::positive_millis")]
    pub logger_timeout: Duration,
    #[serde(rename = "MAILER_TIMEOUT_MS", deserialize_with = "settings::positive_millis")]
    pub mailer_timeout: Duration,
    #[serde(rename = "RABBIT_TIMEOUT_MS", deserialize_with = "settings::positive_millis")]
    pub rabbit_timeout: Duration,
    /// `PROTECTED_ACTIONS` and how their bearer tokens are checked.
    pub protect: crate::protect::ProtectSettings,
    /// The rate limits on `/handle` and failed logins, and which proxies to believe.
    pub limits: crate::limits::LimitSettings,
    /// The circuit breakers in front of the four downstreams (`BREAKER*`).
    pub breaker: crate::breaker::BreakerSettings,
}

impl Default for Settings {
    /// The local wiring, so that a broker started with no settings finds its neighbours.
    fn default() -> Self {
        Self {
            http: HttpSettings::on_port(wiring::BROKER_PORT),
            auth_url: wiring::AUTH_URL.into(),
            logger_rpc_addr: wiring::LOGGER_RPC_ADDR.into(),
            mailer_url: wiring::MAILER_URL.into(),
            rabbit_url: wiring::RABBIT_URL.into(),
            exchange: contract::event::EXCHANGE.into(),
            queue: contract::event::DEFAULT_QUEUE.into(),
            mail_exchange: contract::mail::EXCHANGE.into(),
            mail_queue: contract::mail::DEFAULT_QUEUE.into(),
            queue_type: QueueType::default(),
            // The frontend's origin, by name and by address.
            cors_allowed_origins: ["localhost", wiring::LOCAL_HOST]
                .map(|host| format!("http://{host}:{}", wiring::FRONTEND_PORT))
                .into(),
            // bcrypt at cost 12 takes a few hundred milliseconds, more under load.
            auth_timeout: Duration::from_secs(5),
            logger_timeout: Duration::from_secs(3),
            // An SMTP exchange can be slow: connect, greet, send, quit.
            mailer_timeout: Duration::from_secs(10),
            rabbit_timeout: Duration::from_secs(3),
            protect: crate::protect::ProtectSettings::default(),
            limits: crate::limits::LimitSettings::default(),
            breaker: crate::breaker::BreakerSettings::default(),
        }
    }
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        env.read(wiring::BROKER_PORT, &["protect", "limits", "breaker"])
    }
}

/// An `http(s)://` URL, checked now rather than at the first request; trailing slashes dropped.
fn base_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    use serde::de::Error;
    let value = String::deserialize(deserializer)?;
    let url = reqwest::Url::parse(&value).map_err(D::Error::custom)?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(D::Error::custom("must be an http:// URL with a host"));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use service_kit::ExposeSecret;

    use super::*;

    #[test]
    fn an_empty_environment_gives_the_local_defaults() {
        let settings = Settings::from_env(&Env::default()).unwrap();
        assert_eq!(settings.http.port, 8080);
        assert_eq!(settings.auth_url, "http://127.0.0.1:8083");
        assert_eq!(settings.logger_rpc_addr, "127.0.0.1:5001");
        assert_eq!(settings.mailer_url, "http://127.0.0.1:8085");
        assert_eq!(settings.rabbit_url.first().expose_secret(), "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(settings.rabbit_url.items().len(), 1);
        assert_eq!(settings.queue_type, QueueType::Classic);
        assert_eq!(settings.exchange, "logs_topic");
        assert_eq!(settings.queue, "logs");
        assert_eq!((settings.mail_exchange.as_str(), settings.mail_queue.as_str()), ("mail", "mail"));
        assert_eq!(settings.cors_allowed_origins, ["http://localhost:8081", "http://127.0.0.1:8081"]);
        assert_eq!(settings.mailer_timeout, Duration::from_secs(10));
        assert_eq!(settings.protect.protected_actions, ["logs", "mail"]);
        assert_eq!(Settings::default().protect.protected_actions, ["logs", "mail"]);
        assert!(settings.limits.enabled);
        assert_eq!((settings.limits.per_minute, settings.limits.burst), (600, 100));
        let breaker = &settings.breaker;
        assert!(breaker.enabled);
        assert_eq!((breaker.failures, breaker.open_for, breaker.half_open_trials), (5, Duration::from_secs(10), 1));
        assert_eq!((breaker.failure_percent, breaker.window, breaker.min_calls), (50, Duration::from_secs(10), 20));
    }

    #[test]
    fn variables_override_the_defaults() {
        let env = Env::from_pairs([
            ("PORT", "9080"),
            ("AUTH_URL", "http://authentication-service/"),
            ("CORS_ALLOWED_ORIGINS", "https://app.example.com"),
            ("LOGGER_TIMEOUT_MS", "250"),
            ("PROTECTED_ACTIONS", "none"),
            ("RATE_LIMIT_PER_MINUTE", "60"),
            ("TRUSTED_PROXIES", "10.0.0.0/8"),
            ("BREAKER", "off"),
            ("BREAKER_FAILURES", "3"),
            ("BREAKER_OPEN_MS", "2500"),
            ("BREAKER_HALF_OPEN_TRIALS", "2"),
            ("BREAKER_FAILURE_PERCENT", "80"),
            ("BREAKER_WINDOW_MS", "30000"),
            ("BREAKER_MIN_CALLS", "50"),
            ("QUEUE_TYPE", "quorum"),
            ("RABBIT_URL", "amqp://rabbit-0/%2f,amqp://rabbit-1/%2f,amqp://rabbit-2/%2f"),
        ]);
        let settings = Settings::from_env(&env).unwrap();
        assert_eq!(settings.http.port, 9080);
        assert_eq!(settings.auth_url, "http://authentication-service");
        assert_eq!(settings.cors_allowed_origins, ["https://app.example.com"]);
        assert_eq!(settings.logger_timeout, Duration::from_millis(250));
        assert!(settings.protect.protected_actions.is_empty());
        assert_eq!(settings.limits.per_minute, 60);
        assert_eq!(settings.limits.trusted_proxies.len(), 1);
        let breaker = &settings.breaker;
        assert!(!breaker.enabled);
        assert_eq!((breaker.failures, breaker.open_for, breaker.half_open_trials), (3, Duration::from_millis(2500), 2));
        assert_eq!((breaker.failure_percent, breaker.window, breaker.min_calls), (80, Duration::from_secs(30), 50));
        assert_eq!(settings.queue_type, QueueType::Quorum);
        assert_eq!(settings.rabbit_url.items().len(), 3);
    }

    #[test]
    fn bad_values_are_refused_and_named() {
        let cases = [
            ("AUTH_URL", "authentication:8083", "no scheme"),
            ("MAILER_URL", "ftp://mailer", "not http"),
            ("AUTH_TIMEOUT_MS", "soon", "not a number"),
            ("RABBIT_TIMEOUT_MS", "0", "zero"),
            ("TRUSTED_PROXIES", "10.0.0.0/33", "not a CIDR"),
            ("BREAKER", "maybe", "not on or off"),
            ("BREAKER_FAILURES", "0", "zero"),
            ("BREAKER_OPEN_MS", "0", "zero"),
            ("BREAKER_HALF_OPEN_TRIALS", "0", "zero"),
            ("BREAKER_FAILURE_PERCENT", "101", "over 100"),
            ("BREAKER_FAILURE_PERCENT", "0", "zero"),
            ("BREAKER_WINDOW_MS", "0", "zero"),
            ("BREAKER_MIN_CALLS", "0", "zero"),
            ("QUEUE_TYPE", "mirrored", "classic mirroring is gone in RabbitMQ 4"),
            ("RABBIT_URL", " , ", "no URL at all"),
        ];
        for (key, value, why) in cases {
            let error = Settings::from_env(&Env::from_pairs([(key, value)])).unwrap_err();
            assert_eq!(error.key, key, "{why}");
        }
    }

    #[test]
    fn debug_output_hides_the_rabbitmq_password() {
        let env = Env::from_pairs([("RABBIT_URL", "amqp://user:s3cret@rabbit:5672/%2f")]);
        let shown = format!("{:?}", Settings::from_env(&env).unwrap());
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
