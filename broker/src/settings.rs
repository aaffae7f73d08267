//! The broker's settings: where its four downstreams are and how long each hop may take.

use std::time::Duration;

use service_kit::{Env, HttpSettings, SettingsError};

/// Variable names, defined once.
pub const AUTH_URL: &str = "AUTH_URL";
pub const LOGGER_RPC_ADDR: &str = "LOGGER_RPC_ADDR";
pub const MAILER_URL: &str = "MAILER_URL";
pub const RABBIT_URL: &str = "RABBIT_URL";
pub const EXCHANGE: &str = "EXCHANGE";
pub const QUEUE_NAME: &str = "QUEUE_NAME";
pub const CORS_ALLOWED_ORIGINS: &str = "CORS_ALLOWED_ORIGINS";
pub const AUTH_TIMEOUT_MS: &str = "AUTH_TIMEOUT_MS";
pub const LOGGER_TIMEOUT_MS: &str = "LOGGER_TIMEOUT_MS";
pub const MAILER_TIMEOUT_MS: &str = "MAILER_TIMEOUT_MS";
pub const RABBIT_TIMEOUT_MS: &str = "RABBIT_TIMEOUT_MS";

/// Defaults: the local ports of DESIGN.md, so a broker started with no settings finds its neighbours.
pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_AUTH_URL: &str = "http://127.0.0.1:8083";
pub const DEFAULT_LOGGER_RPC_ADDR: &str = "127.0.0.1:5001";
pub const DEFAULT_MAILER_URL: &str = "http://127.0.0.1:8085";
pub const DEFAULT_RABBIT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The frontend's origin, by name and by address.
pub const DEFAULT_CORS_ALLOWED_ORIGINS: [&str; 2] = ["http://localhost:8081", "http://127.0.0.1:8081"];
/// bcrypt at cost 12 takes a few hundred milliseconds, more under load.
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_LOGGER_TIMEOUT: Duration = Duration::from_secs(3);
/// An SMTP exchange can be slow: connect, greet, send, quit.
pub const DEFAULT_MAILER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_RABBIT_TIMEOUT: Duration = Duration::from_secs(3);

/// Everything the broker reads at start-up. Tests build it directly (port 0, their own
/// downstreams) rather than through the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the broker listens (`HOST`, `PORT`, default 8080).
    pub http: HttpSettings,
    /// Base URL of the authentication service, without a trailing slash.
    pub auth_url: String,
    /// `host:port` of the logger's tarpc server.
    pub logger_rpc_addr: String,
    /// Base URL of the mailer, without a trailing slash.
    pub mailer_url: String,
    /// RabbitMQ, where `event` actions and login events are published.
    pub rabbit_url: String,
    /// The topic exchange events go to (`logs_topic`); tests use a unique one each.
    pub exchange: String,
    /// The listeners' shared queue (`logs`). The broker declares it too, so that an event
    /// accepted before any listener ever ran is queued, not dropped by an unbound exchange.
    pub queue: String,
    /// Browser origins allowed to call the broker (CORS).
    pub cors_allowed_origins: Vec<String>,
    /// The longest the broker waits for each hop; past it the caller gets a 504.
    pub auth_timeout: Duration,
    pub logger_timeout: Duration,
    pub mailer_timeout: Duration,
    pub rabbit_timeout: Duration,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        Ok(Self {
            http: HttpSettings::from_env(env, DEFAULT_PORT)?,
            auth_url: base_url(env, AUTH_URL, DEFAULT_AUTH_URL)?,
            logger_rpc_addr: env.string_or(LOGGER_RPC_ADDR, DEFAULT_LOGGER_RPC_ADDR),
            mailer_url: base_url(env, MAILER_URL, DEFAULT_MAILER_URL)?,
            rabbit_url: env.string_or(RABBIT_URL, DEFAULT_RABBIT_URL),
            exchange: env.string_or(EXCHANGE, contract::event::EXCHANGE),
            queue: env.string_or(QUEUE_NAME, contract::event::DEFAULT_QUEUE),
            cors_allowed_origins: env.list_or(CORS_ALLOWED_ORIGINS, &DEFAULT_CORS_ALLOWED_ORIGINS),
            auth_timeout: env.positive_millis_or(AUTH_TIMEOUT_MS, DEFAULT_AUTH_TIMEOUT)?,
            logger_timeout: env.positive_millis_or(LOGGER_TIMEOUT_MS, DEFAULT_LOGGER_TIMEOUT)?,
            mailer_timeout: env.positive_millis_or(MAILER_TIMEOUT_MS, DEFAULT_MAILER_TIMEOUT)?,
            rabbit_timeout: env.positive_millis_or(RABBIT_TIMEOUT_MS, DEFAULT_RABBIT_TIMEOUT)?,
        })
    }
}

/// An `http(s)://` URL, checked now rather than at the first request; trailing slashes dropped.
fn base_url(env: &Env, key: &str, default: &str) -> Result<String, SettingsError> {
    let value = env.string_or(key, default);
    let invalid = |reason: String| SettingsError { key: key.to_owned(), value: value.clone(), reason };
    let url = reqwest::Url::parse(&value).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid("must be an http:// URL with a host".to_owned()));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_environment_gives_the_local_defaults() {
        let settings = Settings::from_env(&Env::default()).unwrap();
        assert_eq!(settings.http.port, 8080);
        assert_eq!(settings.auth_url, "http://127.0.0.1:8083");
        assert_eq!(settings.logger_rpc_addr, "127.0.0.1:5001");
        assert_eq!(settings.mailer_url, "http://127.0.0.1:8085");
        assert_eq!(settings.rabbit_url, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(settings.exchange, "logs_topic");
        assert_eq!(settings.queue, "logs");
        assert_eq!(settings.cors_allowed_origins, ["http://localhost:8081", "http://127.0.0.1:8081"]);
        assert_eq!(settings.mailer_timeout, Duration::from_secs(10));
    }

    #[test]
    fn variables_override_the_defaults() {
        let env = Env::from_pairs([
            ("AUTH_URL", "http://authentication-service/"),
            ("CORS_ALLOWED_ORIGINS", "https://app.example.com"),
            ("LOGGER_TIMEOUT_MS", "250"),
        ]);
        let settings = Settings::from_env(&env).unwrap();
        assert_eq!(settings.auth_url, "http://authentication-service");
        assert_eq!(settings.cors_allowed_origins, ["https://app.example.com"]);
        assert_eq!(settings.logger_timeout, Duration::from_millis(250));
    }

    #[test]
    fn bad_values_are_refused_and_named() {
        let cases = [
            ("AUTH_URL", "authentication:8083", "no scheme"),
            ("MAILER_URL", "ftp://mailer", "not http"),
            ("AUTH_TIMEOUT_MS", "soon", "not a number"),
            ("RABBIT_TIMEOUT_MS", "0", "zero"),
        ];
        for (key, value, why) in cases {
            let error = Settings::from_env(&Env::from_pairs([(key, value)])).unwrap_err();
            assert_eq!(error.key, key, "{why}");
        }
    }
}
