//! The service's settings, read once from the environment (`main`) or built directly (tests).

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use service_kit::settings::{self, Env, HttpSettings, SecretString, SettingsError};
use service_kit::wiring;

/// The cost of new hashes, and of the seed user's hash, unless `BCRYPT_COST` says otherwise.
pub const DEFAULT_BCRYPT_COST: u32 = 12;
/// The costs bcrypt accepts.
pub const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 4..=31;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Where the HTTP server listens (`HOST`, `PORT`).
    pub http: HttpSettings,
    /// The user database and how hard to wait for it.
    pub database: DatabaseSettings,
    /// bcrypt cost of new hashes (4..=31). Stored hashes of any cost verify.
    #[serde(rename = "BCRYPT_COST", deserialize_with = "bcrypt_cost")]
    pub bcrypt_cost: u32,
    /// How many bcrypt computations run at once; more requests queue instead of starving the CPU.
    #[serde(rename = "BCRYPT_CONCURRENCY", deserialize_with = "settings::count")]
    pub bcrypt_concurrency: usize,
    /// How many logins may wait for a bcrypt worker; one more is answered 503 at once. The
    /// default, 4 per worker, is a wait of about a second at cost 12 on a 2-core box, well
    /// within the broker's 5 s auth budget (see project/BENCHMARKS.md). 0 allows no waiting.
    #[serde(rename = "BCRYPT_QUEUE_SIZE")]
    pub bcrypt_queue: usize,
    /// How access tokens are signed (`TOKEN_*`).
    pub tokens: TokenSettings,
}

/// The access token's key and claims; see `crate::tokens`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TokenSettings {
    /// The Ed25519 private key as PKCS#8 PEM (`TOKEN_SIGNING_KEY`); wins over the file.
    #[serde(rename = "TOKEN_SIGNING_KEY")]
    pub signing_key: Option<SecretString>,
    /// A file holding that PEM (`TOKEN_SIGNING_KEY_FILE`), e.g. a mounted secret.
    #[serde(rename = "TOKEN_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<std::path::PathBuf>,
    /// The key used before the last rotation, private or public PEM (`TOKEN_PREVIOUS_KEY`):
    /// published in the JWKS so that its tokens verify until they expire.
    #[serde(rename = "TOKEN_PREVIOUS_KEY")]
    pub previous_key: Option<SecretString>,
    /// Lifetime of a token in seconds (`TOKEN_TTL_SECS`, default 900).
    #[serde(rename = "TOKEN_TTL_SECS", deserialize_with = "settings::count")]
    pub ttl_secs: u64,
    /// `iss` (`TOKEN_ISSUER`) and `aud` (`TOKEN_AUDIENCE`); the broker checks the same values.
    #[serde(rename = "TOKEN_ISSUER")]
    pub issuer: String,
    #[serde(rename = "TOKEN_AUDIENCE")]
    pub audience: String,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            signing_key: None,
            signing_key_file: None,
            previous_key: None,
            ttl_secs: 900,
            issuer: contract::token::DEFAULT_ISSUER.into(),
            audience: contract::token::DEFAULT_AUDIENCE.into(),
        }
    }
}

/// Queue places per bcrypt worker, unless `BCRYPT_QUEUE_SIZE` says otherwise.
pub const QUEUE_PER_WORKER: usize = 4;

impl Default for Settings {
    fn default() -> Self {
        let bcrypt_concurrency = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            http: HttpSettings::on_port(wiring::AUTHENTICATION_PORT),
            database: DatabaseSettings::default(),
            bcrypt_cost: DEFAULT_BCRYPT_COST,
            bcrypt_concurrency,
            bcrypt_queue: QUEUE_PER_WORKER * bcrypt_concurrency,
            tokens: TokenSettings::default(),
        }
    }
}

/// The Postgres connection pool. The timeouts bound every step, so that a database that is down
/// or hanging makes a request fail with a 503 in about `query_timeout`, never hang.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// A libpq-style URL or key/value string (`DSN`); may carry a password.
    #[serde(rename = "DSN")]
    pub dsn: SecretString,
    /// Most connections the pool opens.
    #[serde(rename = "DB_POOL_MAX_SIZE", deserialize_with = "settings::count")]
    pub pool_max_size: usize,
    /// Opening one connection (TCP connect + start-up).
    #[serde(rename = "DB_CONNECT_TIMEOUT_MS", deserialize_with = "settings::positive_millis")]
    pub connect_timeout: Duration,
    /// Waiting for a free connection when all are in use.
    #[serde(rename = "DB_WAIT_TIMEOUT_MS", deserialize_with = "settings::positive_millis")]
    pub wait_timeout: Duration,
    /// Checking that an idle connection still works before handing it out.
    #[serde(rename = "DB_RECYCLE_TIMEOUT_MS", deserialize_with = "settings::positive_millis")]
    pub recycle_timeout: Duration,
    /// One whole database operation: getting a connection and running the statement.
    #[serde(rename = "DB_QUERY_TIMEOUT_MS", deserialize_with = "settings::positive_millis")]
    pub query_timeout: Duration,
}

impl DatabaseSettings {
    /// Default pool limits for the database at `dsn`.
    pub fn new(dsn: impl Into<String>) -> Self {
        Self {
            dsn: dsn.into().into(),
            pool_max_size: 16,
            connect_timeout: Duration::from_millis(1500),
            wait_timeout: Duration::from_millis(1500),
            recycle_timeout: Duration::from_millis(500),
            query_timeout: Duration::from_secs(2),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self::new(wiring::DSN)
    }
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        env.read(wiring::AUTHENTICATION_PORT, &["database", "tokens"])
    }
}

fn bcrypt_cost<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let cost = u32::deserialize(deserializer)?;
    if !BCRYPT_COSTS.contains(&cost) {
        let reason = format!("must be between {} and {}", BCRYPT_COSTS.start(), BCRYPT_COSTS.end());
        return Err(serde::de::Error::custom(reason));
    }
    Ok(cost)
}

#[cfg(test)]
mod tests {
    use service_kit::ExposeSecret;

    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let settings = Settings::from_env(&Env::default()).unwrap();
        assert_eq!(settings.http.port, 8083);
        assert_eq!(settings.database.dsn.expose_secret(), wiring::DSN);
        assert_eq!(settings.bcrypt_cost, 12);
        assert!(settings.bcrypt_concurrency >= 1);
        assert_eq!(settings.bcrypt_queue, QUEUE_PER_WORKER * settings.bcrypt_concurrency);
    }

    #[test]
    fn environment_variables_override_the_defaults() {
        let env = Env::from_pairs([
            ("PORT", "9000"),
            ("DSN", "postgres://u:p@db:5432/other"),
            ("BCRYPT_COST", "10"),
            ("DB_POOL_MAX_SIZE", "3"),
            ("DB_QUERY_TIMEOUT_MS", "750"),
            ("BCRYPT_QUEUE_SIZE", "0"),
        ]);
        let settings = Settings::from_env(&env).unwrap();
        assert_eq!(settings.http.port, 9000);
        assert_eq!(settings.database.dsn.expose_secret(), "postgres://u:p@db:5432/other");
        assert_eq!(settings.bcrypt_cost, 10);
        assert_eq!(settings.database.pool_max_size, 3);
        assert_eq!(settings.database.query_timeout, Duration::from_millis(750));
        assert_eq!(settings.bcrypt_queue, 0);
    }

    #[test]
    fn a_bcrypt_cost_out_of_range_is_refused() {
        for cost in ["3", "32", "twelve"] {
            let error = Settings::from_env(&Env::from_pairs([("BCRYPT_COST", cost)])).unwrap_err();
            assert_eq!(error.key, "BCRYPT_COST", "cost {cost}");
        }
    }

    #[test]
    fn zero_is_refused_where_it_would_stall_every_request() {
        for key in ["BCRYPT_CONCURRENCY", "DB_POOL_MAX_SIZE", "DB_CONNECT_TIMEOUT_MS", "DB_QUERY_TIMEOUT_MS"] {
            let error = Settings::from_env(&Env::from_pairs([(key, "0")])).unwrap_err();
            assert_eq!(error.key, key);
        }
    }

    #[test]
    fn debug_output_hides_the_dsn() {
        let env = Env::from_pairs([
            ("DSN", "postgres://u:hunter2@db/users"),
            ("TOKEN_SIGNING_KEY", "-----BEGIN PRIVATE KEY-----hunter3"),
            ("TOKEN_PREVIOUS_KEY", "-----BEGIN PRIVATE KEY-----hunter4"),
        ]);
        let shown = format!("{:?}", Settings::from_env(&env).unwrap());
        assert!(!shown.contains("hunter") && !shown.contains("BEGIN"), "{shown}");
    }
}
