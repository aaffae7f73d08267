//! The listener's settings, read once from the environment (`main`) or built directly (tests).

use std::time::Duration;

use service_kit::{Env, HttpSettings, SettingsError};

/// Environment variable names.
pub const RABBIT_URL: &str = "RABBIT_URL";
pub const LOGGER_RPC_ADDR: &str = "LOGGER_RPC_ADDR";
pub const QUEUE_NAME: &str = "QUEUE_NAME";
pub const EXCHANGE: &str = "EXCHANGE";
pub const PREFETCH: &str = "PREFETCH";
pub const MAX_ATTEMPTS: &str = "MAX_ATTEMPTS";
pub const LOGGER_TIMEOUT_MS: &str = "LOGGER_TIMEOUT_MS";
pub const RETRY_MIN_MS: &str = "RETRY_MIN_MS";
pub const RETRY_MAX_MS: &str = "RETRY_MAX_MS";
pub const CONNECTION_NAME: &str = "CONNECTION_NAME";

pub const DEFAULT_PORT: u16 = 8086;
pub const DEFAULT_RABBIT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_LOGGER_RPC_ADDR: &str = "127.0.0.1:5001";
/// Enough in flight for the logger to write large groups: on the local stack 64 stored ~700
/// events/s end to end, 256 ~2,400/s, 1,024 ~2,700/s (`examples/bench_events.rs`).
pub const DEFAULT_PREFETCH: u16 = 256;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
pub const DEFAULT_LOGGER_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRY_MIN: Duration = Duration::from_millis(100);
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(5);
pub const DEFAULT_CONNECTION_NAME: &str = "listener";

#[derive(Clone)]
pub struct Settings {
    /// Where `/health` and `/ready` are served (`HOST`, `PORT`).
    pub http: HttpSettings,
    /// The broker (`RABBIT_URL`); may carry credentials.
    pub rabbit_url: String,
    /// The logger's tarpc server, `host:port` (`LOGGER_RPC_ADDR`).
    pub logger_rpc_addr: String,
    /// The shared queue every replica consumes (`QUEUE_NAME`); its dead letters go to `<queue>.dead`.
    pub queue: String,
    /// The topic exchange events are published to (`EXCHANGE`).
    pub exchange: String,
    /// Unacknowledged deliveries at once (`PREFETCH`): the window processed concurrently.
    pub prefetch: u16,
    /// Failed writes of one event, while the logger is otherwise healthy, before it is
    /// dead-lettered (`MAX_ATTEMPTS`). An unreachable logger is waited for and never counts.
    pub max_attempts: u32,
    /// Bound on one logger call (`LOGGER_TIMEOUT_MS`).
    pub logger_timeout: Duration,
    /// First delay of every backoff: reconnecting to RabbitMQ, retrying a write (`RETRY_MIN_MS`).
    pub retry_min: Duration,
    /// Longest delay of every backoff (`RETRY_MAX_MS`).
    pub retry_max: Duration,
    /// The AMQP connection's name, shown by `rabbitmqctl list_connections` (`CONNECTION_NAME`).
    pub connection_name: String,
}

impl Settings {
    /// Defaults of the design: port 8086, the local broker and logger, queue `logs` on `logs_topic`.
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let settings = Self {
            http: HttpSettings::from_env(env, DEFAULT_PORT)?,
            rabbit_url: env.string_or(RABBIT_URL, DEFAULT_RABBIT_URL),
            logger_rpc_addr: env.string_or(LOGGER_RPC_ADDR, DEFAULT_LOGGER_RPC_ADDR),
            queue: env.string_or(QUEUE_NAME, contract::event::DEFAULT_QUEUE),
            exchange: env.string_or(EXCHANGE, contract::event::EXCHANGE),
            prefetch: env.at_least_one_or(PREFETCH, DEFAULT_PREFETCH)?,
            max_attempts: env.at_least_one_or(MAX_ATTEMPTS, DEFAULT_MAX_ATTEMPTS)?,
            logger_timeout: env.millis_or(LOGGER_TIMEOUT_MS, DEFAULT_LOGGER_TIMEOUT)?,
            retry_min: env.millis_or(RETRY_MIN_MS, DEFAULT_RETRY_MIN)?,
            retry_max: env.millis_or(RETRY_MAX_MS, DEFAULT_RETRY_MAX)?,
            connection_name: env.string_or(CONNECTION_NAME, DEFAULT_CONNECTION_NAME),
        };
        if settings.retry_max < settings.retry_min {
            return Err(SettingsError {
                key: RETRY_MAX_MS.into(),
                value: settings.retry_max.as_millis().to_string(),
                reason: format!("must not be below {RETRY_MIN_MS} ({} ms)", settings.retry_min.as_millis()),
            });
        }
        Ok(settings)
    }

    /// Loopback on a free port with quick backoffs, for tests: they name the queue, the
    /// exchange, the logger and the connection themselves.
    pub fn ephemeral(
        rabbit_url: impl Into<String>,
        logger_rpc_addr: impl Into<String>,
        exchange: impl Into<String>,
        queue: impl Into<String>,
    ) -> Self {
        Self {
            http: HttpSettings::ephemeral(),
            rabbit_url: rabbit_url.into(),
            logger_rpc_addr: logger_rpc_addr.into(),
            queue: queue.into(),
            exchange: exchange.into(),
            prefetch: DEFAULT_PREFETCH,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            logger_timeout: DEFAULT_LOGGER_TIMEOUT,
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_millis(500),
            connection_name: DEFAULT_CONNECTION_NAME.into(),
        }
    }

    /// The exchange, the queue and their dead-letter route.
    pub fn topology(&self) -> service_kit::amqp::Topology {
        service_kit::amqp::Topology::new(&self.exchange, &self.queue)
    }
}

// The broker URL may carry a password: show it without the user-info part.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = match (self.rabbit_url.split_once("://"), self.rabbit_url.rfind('@')) {
            (Some((scheme, _)), Some(at)) => format!("{scheme}://<redacted>@{}", &self.rabbit_url[at + 1..]),
            _ => self.rabbit_url.clone(),
        };
        f.debug_struct("Settings")
            .field("http", &self.http)
            .field("rabbit_url", &url)
            .field("logger_rpc_addr", &self.logger_rpc_addr)
            .field("queue", &self.queue)
            .field("exchange", &self.exchange)
            .field("prefetch", &self.prefetch)
            .field("max_attempts", &self.max_attempts)
            .field("logger_timeout", &self.logger_timeout)
            .field("retry_min", &self.retry_min)
            .field("retry_max", &self.retry_max)
            .field("connection_name", &self.connection_name)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_those_of_the_design() {
        let settings = Settings::from_env(&Env::default()).unwrap();
        assert_eq!(settings.http.port, 8086);
        assert_eq!(settings.rabbit_url, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(settings.logger_rpc_addr, "127.0.0.1:5001");
        assert_eq!((settings.exchange.as_str(), settings.queue.as_str()), ("logs_topic", "logs"));
        assert_eq!(settings.topology().dead_letter_queue, "logs.dead");
        assert_eq!((settings.prefetch, settings.max_attempts), (256, 5));
    }

    #[test]
    fn variables_override_the_defaults() {
        let env = Env::from_pairs([
            ("PORT", "9086"),
            ("QUEUE_NAME", "events"),
            ("EXCHANGE", "ex"),
            ("PREFETCH", "8"),
            ("MAX_ATTEMPTS", "2"),
            ("LOGGER_TIMEOUT_MS", "250"),
            ("CONNECTION_NAME", "listener-1"),
        ]);
        let settings = Settings::from_env(&env).unwrap();
        assert_eq!(settings.http.port, 9086);
        assert_eq!((settings.exchange.as_str(), settings.queue.as_str()), ("ex", "events"));
        assert_eq!((settings.prefetch, settings.max_attempts), (8, 2));
        assert_eq!(settings.logger_timeout, Duration::from_millis(250));
        assert_eq!(settings.connection_name, "listener-1");
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_named() {
        let cases = [
            (PREFETCH, "0", "a window of nothing would never deliver"),
            (PREFETCH, "70000", "prefetch is a 16-bit count"),
            (MAX_ATTEMPTS, "0", "an event must be tried at least once"),
            (LOGGER_TIMEOUT_MS, "soon", "not a number"),
            (RETRY_MAX_MS, "10", "the longest delay below the first one"),
        ];
        for (key, value, why) in cases {
            let error = Settings::from_env(&Env::from_pairs([(key, value)])).unwrap_err();
            assert_eq!(error.key, key, "{why}");
        }
    }

    #[test]
    fn debug_output_hides_the_broker_password() {
        let env = Env::from_pairs([(RABBIT_URL, "amqp://user:s3cret@rabbit:5672/%2f")]);
        let shown = format!("{:?}", Settings::from_env(&env).unwrap());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("rabbit:5672"), "{shown}");
    }
}
