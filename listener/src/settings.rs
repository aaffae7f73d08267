//! The listener's settings, read once from the environment (`main`) or built directly (tests).

use std::time::Duration;

use serde::Deserialize;
use service_kit::amqp::QueueType;
use service_kit::settings::{self, Env, HttpSettings, SecretList, SettingsError};
use service_kit::wiring;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Where `/health` and `/ready` are served (`HOST`, `PORT`).
    pub http: HttpSettings,
    /// RabbitMQ (`RABBIT_URL`): one AMQP URL, or the comma-separated URLs of a cluster's nodes,
    /// tried in turn; they may carry credentials.
    #[serde(rename = "RABBIT_URL")]
    pub rabbit_url: SecretList,
    /// The logger's tarpc server, `host:port` (`LOGGER_RPC_ADDR`).
    #[serde(rename = "LOGGER_RPC_ADDR")]
    pub logger_rpc_addr: String,
    /// The shared queue every replica consumes (`QUEUE_NAME`); its dead letters go to `<queue>.dead`.
    #[serde(rename = "QUEUE_NAME")]
    pub queue: String,
    /// The topic exchange events are published to (`EXCHANGE`).
    #[serde(rename = "EXCHANGE")]
    pub exchange: String,
    /// `classic` (default: one node) or `quorum` (a cluster) for the queue and its dead letters
    /// (`QUEUE_TYPE`); the broker must say the same.
    #[serde(rename = "QUEUE_TYPE")]
    pub queue_type: QueueType,
    /// Unacknowledged deliveries at once (`PREFETCH`): the window processed concurrently.
    #[serde(rename = "PREFETCH", deserialize_with = "settings::count")]
    pub prefetch: u16,
    /// Failed writes of one event before it is dead-lettered (`MAX_ATTEMPTS`). An unreachable,
    /// late or unavailable logger or store is waited for and never counts (`handler` docs).
    #[serde(rename = "MAX_ATTEMPTS", deserialize_with = "settings::count")]
    pub max_attempts: u32,
    /// Writes to the logger in flight at once (`MAX_IN_FLIGHT_WRITES`), over all deliveries:
    /// a backlog drains at the store's pace instead of piling retries onto it.
    #[serde(rename = "MAX_IN_FLIGHT_WRITES", deserialize_with = "settings::count")]
    pub max_in_flight_writes: usize,
    /// Bound on one logger call (`LOGGER_TIMEOUT_MS`).
    #[serde(rename = "LOGGER_TIMEOUT_MS", deserialize_with = "settings::positive_millis")]
    pub logger_timeout: Duration,
    /// First delay of every backoff: reconnecting to RabbitMQ, retrying a write (`RETRY_MIN_MS`).
    #[serde(rename = "RETRY_MIN_MS", deserialize_with = "settings::positive_millis")]
    pub retry_min: Duration,
    /// Longest delay of every backoff (`RETRY_MAX_MS`), not below `RETRY_MIN_MS`.
    #[serde(rename = "RETRY_MAX_MS", deserialize_with = "settings::positive_millis")]
    pub retry_max: Duration,
    /// The AMQP connection's name, shown by `rabbitmqctl list_connections` (`CONNECTION_NAME`).
    #[serde(rename = "CONNECTION_NAME")]
    pub connection_name: String,
}

impl Default for Settings {
    /// The design's: port 8086, the local broker and logger, queue `logs` on `logs_topic`.
    fn default() -> Self {
        Self {
            http: HttpSettings::on_port(wiring::LISTENER_PORT),
            rabbit_url: wiring::RABBIT_URL.into(),
            logger_rpc_addr: wiring::LOGGER_RPC_ADDR.into(),
            queue: contract::event::DEFAULT_QUEUE.into(),
            exchange: contract::event::EXCHANGE.into(),
            queue_type: QueueType::default(),
            // Enough in flight for the logger to write large groups: on the local stack 64 stored
            // ~700 events/s end to end, 256 ~2,400/s, 1,024 ~2,700/s (`examples/bench_events.rs`).
            prefetch: 256,
            max_attempts: 5,
            // Half the window. `examples/bench_events.rs`, 10,000 events, prefetch 256, release
            // build on the shared 2-core machine: 32 in flight stored 594 events/s, 64 734/s,
            // 128 750/s, 256 742/s. Below 64 the logger's groups shrink and throughput drops;
            // past 128 it gains nothing, and 128 halves the writes a stalled store gets piled on
            // it per replica (each retried every timeout).
            max_in_flight_writes: 128,
            logger_timeout: Duration::from_secs(5),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            connection_name: "listener".into(),
        }
    }
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let settings: Self = env.read(wiring::LISTENER_PORT, &[])?;
        if settings.retry_max < settings.retry_min {
            let (min, max) = (settings.retry_min.as_millis(), settings.retry_max.as_millis());
            return Err(SettingsError::new(
                "RETRY_MAX_MS",
                max.to_string(),
                format!("must not be below RETRY_MIN_MS ({min} ms)"),
            ));
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
            rabbit_url: rabbit_url.into().into(),
            logger_rpc_addr: logger_rpc_addr.into(),
            queue: queue.into(),
            exchange: exchange.into(),
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_millis(500),
            ..Self::default()
        }
    }

    /// The exchange, the queue and their dead-letter route.
    pub fn topology(&self) -> service_kit::amqp::Topology {
        service_kit::amqp::Topology::new(&self.exchange, &self.queue).with_queue_type(self.queue_type)
    }
}

#[cfg(test)]
mod tests {
    use service_kit::ExposeSecret;

    use super::*;

    #[test]
    fn defaults_are_those_of_the_design() {
        let settings = Settings::from_env(&Env::default()).unwrap();
        assert_eq!(settings.http.port, 8086);
        assert_eq!(settings.rabbit_url.first().expose_secret(), "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(settings.rabbit_url.items().len(), 1);
        assert_eq!(settings.topology().queue_type, QueueType::Classic);
        assert_eq!(settings.logger_rpc_addr, "127.0.0.1:5001");
        assert_eq!((settings.exchange.as_str(), settings.queue.as_str()), ("logs_topic", "logs"));
        assert_eq!(settings.topology().dead_letter_queue, "logs.dead");
        assert_eq!((settings.prefetch, settings.max_attempts), (256, 5));
        assert!(settings.max_in_flight_writes <= usize::from(settings.prefetch), "a cap above the window caps nothing");
    }

    #[test]
    fn variables_override_the_defaults() {
        let env = Env::from_pairs([
            ("PORT", "9086"),
            ("QUEUE_NAME", "events"),
            ("EXCHANGE", "ex"),
            ("PREFETCH", "8"),
            ("MAX_ATTEMPTS", "2"),
            ("MAX_IN_FLIGHT_WRITES", "16"),
            ("LOGGER_TIMEOUT_MS", "250"),
            ("CONNECTION_NAME", "listener-1"),
            ("QUEUE_TYPE", "quorum"),
            ("RABBIT_URL", "amqp://rabbit-0/%2f, amqp://rabbit-1/%2f"),
        ]);
        let settings = Settings::from_env(&env).unwrap();
        assert_eq!(settings.http.port, 9086);
        assert_eq!((settings.exchange.as_str(), settings.queue.as_str()), ("ex", "events"));
        assert_eq!((settings.prefetch, settings.max_attempts, settings.max_in_flight_writes), (8, 2, 16));
        assert_eq!(settings.logger_timeout, Duration::from_millis(250));
        assert_eq!(settings.connection_name, "listener-1");
        assert_eq!(settings.topology().queue_type, QueueType::Quorum);
        let urls: Vec<&str> = settings.rabbit_url.items().iter().map(|url| url.expose_secret()).collect();
        assert_eq!(urls, ["amqp://rabbit-0/%2f", "amqp://rabbit-1/%2f"]);
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_named() {
        let cases = [
            ("PREFETCH", "0", "a window of nothing would never deliver"),
            ("PREFETCH", "70000", "prefetch is a 16-bit count"),
            ("MAX_ATTEMPTS", "0", "an event must be tried at least once"),
            ("MAX_IN_FLIGHT_WRITES", "0", "no write would ever be sent"),
            ("LOGGER_TIMEOUT_MS", "soon", "not a number"),
            ("RETRY_MAX_MS", "10", "the longest delay below the first one"),
            ("LOGGER_TIMEOUT_MS", "0", "every write would time out at once"),
            ("RETRY_MIN_MS", "0", "retries in a busy loop"),
            ("QUEUE_TYPE", "mirrored", "classic mirroring is gone in RabbitMQ 4"),
            ("RABBIT_URL", ",", "no URL at all"),
        ];
        for (key, value, why) in cases {
            let error = Settings::from_env(&Env::from_pairs([(key, value)])).unwrap_err();
            assert_eq!(error.key, key, "{why}");
        }
    }

    #[test]
    fn debug_output_hides_the_broker_password() {
        let env = Env::from_pairs([("RABBIT_URL", "amqp://user:s3cret@rabbit:5672/%2f")]);
        let shown = format!("{:?}", Settings::from_env(&env).unwrap());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("queue: \"logs\""), "the rest is shown: {shown}");
    }
}
