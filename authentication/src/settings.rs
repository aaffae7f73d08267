//! The service's settings, read once from the environment (`main`) or built directly (tests).

use std::time::Duration;

use service_kit::{Env, HttpSettings, SettingsError};

/// Environment variable names.
pub const DSN: &str = "DSN";
pub const BCRYPT_COST: &str = "BCRYPT_COST";
pub const BCRYPT_CONCURRENCY: &str = "BCRYPT_CONCURRENCY";
pub const DB_POOL_MAX_SIZE: &str = "DB_POOL_MAX_SIZE";
pub const DB_CONNECT_TIMEOUT_MS: &str = "DB_CONNECT_TIMEOUT_MS";
pub const DB_WAIT_TIMEOUT_MS: &str = "DB_WAIT_TIMEOUT_MS";
pub const DB_RECYCLE_TIMEOUT_MS: &str = "DB_RECYCLE_TIMEOUT_MS";
pub const DB_QUERY_TIMEOUT_MS: &str = "DB_QUERY_TIMEOUT_MS";

pub const DEFAULT_PORT: u16 = 8083;
pub const DEFAULT_DSN: &str = "postgres://postgres:password@127.0.0.1:5432/users";
/// The cost of new hashes, and of the seed user's hash, unless `BCRYPT_COST` says otherwise.
pub const DEFAULT_BCRYPT_COST: u32 = 12;
/// The costs bcrypt accepts.
pub const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 4..=31;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the HTTP server listens (`HOST`, `PORT`).
    pub http: HttpSettings,
    /// The user database and how hard to wait for it.
    pub database: DatabaseSettings,
    /// bcrypt cost of new hashes (4..=31). Stored hashes of any cost verify.
    pub bcrypt_cost: u32,
    /// How many bcrypt computations run at once; more requests queue instead of starving the CPU.
    pub bcrypt_concurrency: usize,
}

/// The Postgres connection pool. The timeouts bound every step, so that a database that is down
/// or hanging makes a request fail with a 503 in about `query_timeout`, never hang.
#[derive(Clone)]
pub struct DatabaseSettings {
    /// A libpq-style URL or key/value string (`DSN`).
    pub dsn: String,
    /// Most connections the pool opens.
    pub pool_max_size: usize,
    /// Opening one connection (TCP connect + start-up).
    pub connect_timeout: Duration,
    /// Waiting for a free connection when all are in use.
    pub wait_timeout: Duration,
    /// Checking that an idle connection still works before handing it out.
    pub recycle_timeout: Duration,
    /// One whole database operation: getting a connection and running the statement.
    pub query_timeout: Duration,
}

impl DatabaseSettings {
    /// Default pool limits for the database at `dsn`.
    pub fn new(dsn: impl Into<String>) -> Self {
        Self {
            dsn: dsn.into(),
            pool_max_size: 16,
            connect_timeout: Duration::from_millis(1500),
            wait_timeout: Duration::from_millis(1500),
            recycle_timeout: Duration::from_millis(500),
            query_timeout: Duration::from_secs(2),
        }
    }

    fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let defaults = Self::new(env.string_or(DSN, DEFAULT_DSN));
        Ok(Self {
            pool_max_size: env.parse_or(DB_POOL_MAX_SIZE, defaults.pool_max_size)?,
            connect_timeout: env.millis_or(DB_CONNECT_TIMEOUT_MS, defaults.connect_timeout)?,
            wait_timeout: env.millis_or(DB_WAIT_TIMEOUT_MS, defaults.wait_timeout)?,
            recycle_timeout: env.millis_or(DB_RECYCLE_TIMEOUT_MS, defaults.recycle_timeout)?,
            query_timeout: env.millis_or(DB_QUERY_TIMEOUT_MS, defaults.query_timeout)?,
            ..defaults
        })
    }
}

// The DSN may carry a password: show only that it is set.
impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("dsn", &"<redacted>")
            .field("pool_max_size", &self.pool_max_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("recycle_timeout", &self.recycle_timeout)
            .field("query_timeout", &self.query_timeout)
            .finish()
    }
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let bcrypt_cost = env.parse_or(BCRYPT_COST, DEFAULT_BCRYPT_COST)?;
        if !BCRYPT_COSTS.contains(&bcrypt_cost) {
            return Err(SettingsError {
                key: BCRYPT_COST.to_owned(),
                value: bcrypt_cost.to_string(),
                reason: format!("must be between {} and {}", BCRYPT_COSTS.start(), BCRYPT_COSTS.end()),
            });
        }
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Self {
            http: HttpSettings::from_env(env, DEFAULT_PORT)?,
            database: DatabaseSettings::from_env(env)?,
            bcrypt_cost,
            bcrypt_concurrency: env.parse_or(BCRYPT_CONCURRENCY, cores)?.max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let settings = Settings::from_env(&Env::default()).unwrap();
        assert_eq!(settings.http.port, 8083);
        assert_eq!(settings.database.dsn, DEFAULT_DSN);
        assert_eq!(settings.bcrypt_cost, 12);
        assert!(settings.bcrypt_concurrency >= 1);
    }

    #[test]
    fn environment_variables_override_the_defaults() {
        let env = Env::from_pairs([
            ("PORT", "9000"),
            ("DSN", "postgres://u:p@db:5432/other"),
            ("BCRYPT_COST", "10"),
            ("DB_POOL_MAX_SIZE", "3"),
            ("DB_QUERY_TIMEOUT_MS", "750"),
        ]);
        let settings = Settings::from_env(&env).unwrap();
        assert_eq!(settings.http.port, 9000);
        assert_eq!(settings.database.dsn, "postgres://u:p@db:5432/other");
        assert_eq!(settings.bcrypt_cost, 10);
        assert_eq!(settings.database.pool_max_size, 3);
        assert_eq!(settings.database.query_timeout, Duration::from_millis(750));
    }

    #[test]
    fn a_bcrypt_cost_out_of_range_is_refused() {
        for cost in ["3", "32", "twelve"] {
            let error = Settings::from_env(&Env::from_pairs([("BCRYPT_COST", cost)])).unwrap_err();
            assert_eq!(error.key, "BCRYPT_COST", "cost {cost}");
        }
    }

    #[test]
    fn debug_output_hides_the_dsn() {
        let shown = format!("{:?}", DatabaseSettings::new("postgres://u:hunter2@db/users"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
