//! The logger's settings, read once from the environment (`main`) or built directly (tests).

use std::time::Duration;

use serde::Deserialize;
use service_kit::settings::{self, Env, HttpSettings, SecretString, SettingsError};
use service_kit::wiring;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Where the HTTP server listens (`HOST`, `PORT`).
    pub http: HttpSettings,
    /// The tarpc server's port (`RPC_PORT`), on the same host as HTTP; 0 asks for a free one.
    #[serde(rename = "RPC_PORT")]
    pub rpc_port: u16,
    /// The store.
    pub mongo: MongoSettings,
    /// How concurrent writes are grouped.
    pub batch: BatchSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            http: HttpSettings::on_port(wiring::LOGGER_PORT),
            rpc_port: wiring::LOGGER_RPC_PORT,
            mongo: MongoSettings::default(),
            batch: BatchSettings::default(),
        }
    }
}

/// MongoDB and how long to wait for it, so that a store that is down fails a request fast.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MongoSettings {
    /// A `mongodb://` URL (`MONGO_URL`); may carry credentials.
    #[serde(rename = "MONGO_URL")]
    pub url: SecretString,
    /// The database (`MONGO_DB`); the collection is always `logs`.
    #[serde(rename = "MONGO_DB")]
    pub database: String,
    /// Finding a reachable server and opening a connection (`MONGO_TIMEOUT_MS`): how fast a
    /// request fails when MongoDB is down.
    #[serde(rename = "MONGO_TIMEOUT_MS", deserialize_with = "settings::positive_millis")]
    pub connect_timeout: Duration,
    /// One whole operation (`MONGO_OP_TIMEOUT_MS`), for a server that accepts but hangs.
    #[serde(rename = "MONGO_OP_TIMEOUT_MS", deserialize_with = "settings::positive_millis")]
    pub op_timeout: Duration,
    /// How long entries are kept (`LOG_RETENTION`, a humane duration: `30d`, `12h`, `90 days`;
    /// `off` or `0` keeps them for ever): a TTL index on `created_at` that MongoDB enforces
    /// (see `store`). `None` is off.
    #[serde(rename = "LOG_RETENTION", deserialize_with = "retention")]
    pub retention: Option<Duration>,
}

/// Entries are kept a month unless `LOG_RETENTION` says otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// MongoDB's largest `expireAfterSeconds` (a 32-bit signed count of seconds, some 68 years).
pub const MAX_RETENTION: Duration = Duration::from_secs(i32::MAX as u64);

/// `LOG_RETENTION`: `off` or `0`, or a duration of whole seconds from 1 s to [`MAX_RETENTION`]
/// (MongoDB expires by whole seconds; `500ms` would be rounded by somebody, so it is refused).
pub fn parse_retention(value: &str) -> Result<Option<Duration>, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("off") || value == "0" {
        return Ok(None);
    }
    let retention = humantime::parse_duration(value)
        .map_err(|error| format!("`off`, `0`, or a duration such as `30d` or `12h` ({error})"))?;
    if retention.is_zero() || retention.subsec_nanos() != 0 {
        return Err("a whole number of seconds, at least 1s (or `off`)".to_owned());
    }
    if retention > MAX_RETENTION {
        return Err(format!("at most {} (MongoDB's limit)", humantime::format_duration(MAX_RETENTION)));
    }
    Ok(Some(retention))
}

fn retention<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let value = String::deserialize(deserializer)?;
    parse_retention(&value).map_err(serde::de::Error::custom)
}

impl MongoSettings {
    pub fn new(url: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            url: url.into().into(),
            database: database.into(),
            connect_timeout: Duration::from_secs(2),
            op_timeout: Duration::from_secs(5),
            retention: Some(DEFAULT_RETENTION),
        }
    }
}

impl Default for MongoSettings {
    fn default() -> Self {
        Self::new(wiring::MONGO_URL, wiring::MONGO_DB)
    }
}

/// Grouping of concurrent writes into one `insert_many`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct BatchSettings {
    /// Most entries in one `insert_many` (`BATCH_MAX`). 1 turns grouping off: every write is
    /// its own insert, as in the Go original (the baseline of the benchmark).
    #[serde(rename = "BATCH_MAX", deserialize_with = "settings::count")]
    pub max_entries: usize,
    /// How long a group waits for more writes after its first (`BATCH_WINDOW_MS`): the most a
    /// write is delayed for company. Default 0: a group takes what queued while the previous
    /// groups were being written (see `batch`).
    #[serde(rename = "BATCH_WINDOW_MS", deserialize_with = "settings::millis")]
    pub window: Duration,
    /// How many groups are written at once (`BATCH_CONCURRENCY`), per write class (see
    /// `service`: queued and interactive writes each have a writer). Fewer means bigger groups;
    /// more lets a multi-threaded MongoDB work on several. Against the single-threaded
    /// SecantusDB of the tests 1 is fastest (bench: 1 ≈ 6,100/s, 2 ≈ 5,700/s, 4 ≈ 5,200/s).
    #[serde(rename = "BATCH_CONCURRENCY", deserialize_with = "settings::count")]
    pub concurrency: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self { max_entries: 500, window: Duration::ZERO, concurrency: 2 }
    }
}

impl Settings {
    /// `PORT` (8084), `RPC_PORT` (5001), `MONGO_URL`, `MONGO_DB` (`logs`), timeouts,
    /// `LOG_RETENTION` (30 days), batching.
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        env.read(wiring::LOGGER_PORT, &["mongo", "batch"])
    }

    /// Loopback, free ports for HTTP and RPC, default batching: what tests (this crate's and
    /// other services') use to run a logger in-process.
    pub fn ephemeral(mongo_url: impl Into<String>, mongo_database: impl Into<String>) -> Self {
        Self {
            http: HttpSettings::ephemeral(),
            rpc_port: 0,
            mongo: MongoSettings::new(mongo_url, mongo_database),
            batch: BatchSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use service_kit::ExposeSecret;

    use super::*;

    #[test]
    fn defaults_are_those_of_the_design() {
        let settings = Settings::from_env(&Env::default()).unwrap();
        assert_eq!(settings.http.port, 8084);
        assert_eq!(settings.rpc_port, 5001);
        assert_eq!(settings.mongo.url.expose_secret(), "mongodb://127.0.0.1:27017");
        assert_eq!(settings.mongo.database, "logs");
        assert_eq!(settings.batch, BatchSettings::default());
        assert_eq!(settings.mongo.retention, Some(Duration::from_secs(30 * 86_400)), "30 days");
    }

    #[test]
    fn retention_reads_humane_durations_and_off() {
        let cases = [
            ("30d", Some(30 * 86_400), "days"),
            ("12h", Some(12 * 3_600), "hours"),
            ("90 days", Some(90 * 86_400), "words"),
            ("1h 30m", Some(5_400), "parts"),
            ("1s", Some(1), "the shortest"),
            ("off", None, "off"),
            ("OFF", None, "off in capitals"),
            ("0", None, "zero is off"),
        ];
        for (value, expected, why) in cases {
            let settings = Settings::from_env(&Env::from_pairs([("LOG_RETENTION", value)])).unwrap();
            assert_eq!(settings.mongo.retention, expected.map(Duration::from_secs), "{why}");
        }
    }

    #[test]
    fn variables_override_the_defaults() {
        let env = Env::from_pairs([
            ("PORT", "9000"),
            ("RPC_PORT", "9001"),
            ("MONGO_URL", "mongodb://db:27017"),
            ("MONGO_DB", "other"),
            ("MONGO_TIMEOUT_MS", "300"),
            ("BATCH_MAX", "1"),
            ("BATCH_WINDOW_MS", "3"),
        ]);
        let settings = Settings::from_env(&env).unwrap();
        assert_eq!((settings.http.port, settings.rpc_port), (9000, 9001));
        assert_eq!(settings.mongo.url.expose_secret(), "mongodb://db:27017");
        assert_eq!(settings.mongo.database, "other");
        assert_eq!(settings.mongo.connect_timeout, Duration::from_millis(300));
        assert_eq!(settings.batch.max_entries, 1);
        assert_eq!(settings.batch.window, Duration::from_millis(3));
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_named() {
        let cases = [
            ("RPC_PORT", "seventy", "not a port"),
            ("BATCH_MAX", "0", "a group must hold at least one entry"),
            ("BATCH_CONCURRENCY", "0", "at least one group at a time"),
            ("BATCH_WINDOW_MS", "-1", "negative window"),
            ("MONGO_TIMEOUT_MS", "0", "every request would time out at once"),
            ("MONGO_OP_TIMEOUT_MS", "0", "every operation would time out at once"),
            ("LOG_RETENTION", "30", "a number without a unit"),
            ("LOG_RETENTION", "soon", "not a duration"),
            ("LOG_RETENTION", "1500ms", "not whole seconds"),
            ("LOG_RETENTION", "0s", "zero with a unit: say `off`"),
            ("LOG_RETENTION", "100years", "beyond MongoDB's limit"),
        ];
        for (key, value, why) in cases {
            let error = Settings::from_env(&Env::from_pairs([(key, value)])).unwrap_err();
            assert_eq!(error.key, key, "{why}");
        }
    }

    #[test]
    fn debug_output_hides_mongo_credentials() {
        let env = Env::from_pairs([("MONGO_URL", "mongodb://user:s3cret@db:27017/?authSource=admin")]);
        let shown = format!("{:?}", Settings::from_env(&env).unwrap());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("database: \"logs\""), "the rest is shown: {shown}");
    }
}
