//! Typed settings, parsed once at start-up from environment variables.
//!
//! Each service has a `Settings` struct with a `from_env(&Env)` constructor; tests build the
//! struct directly (port 0, a per-test database) instead of touching the process environment.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// Variable names common to every service.
pub const PORT: &str = "PORT";
pub const HOST: &str = "HOST";
pub const RUST_LOG: &str = "RUST_LOG";
pub const LOG_FORMAT: &str = "LOG_FORMAT";

/// A setting that is present but does not parse.
#[derive(Debug, thiserror::Error)]
#[error("setting {key}={value:?} is invalid: {reason}")]
pub struct SettingsError {
    pub key: String,
    pub value: String,
    pub reason: String,
}

impl SettingsError {
    pub fn new(key: impl Into<String>, value: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { key: key.into(), value: value.into(), reason: reason.into() }
    }
}

/// Where settings come from: the process environment, or a map in tests.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// A snapshot of the process environment.
    pub fn process() -> Self {
        Self { vars: std::env::vars().collect() }
    }

    /// A literal environment, for tests and examples.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// The value when set and not blank.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str).map(str::trim).filter(|v| !v.is_empty())
    }

    pub fn string_or(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or(default).to_owned()
    }

    /// Parses the value, or returns `default` when unset.
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T, SettingsError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|e: T::Err| SettingsError {
                key: key.to_owned(),
                value: value.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    /// A duration given in milliseconds.
    pub fn millis_or(&self, key: &str, default: Duration) -> Result<Duration, SettingsError> {
        let millis = self.parse_or(key, u64::try_from(default.as_millis()).unwrap_or(u64::MAX))?;
        Ok(Duration::from_millis(millis))
    }

    /// A count that must be at least 1 (a pool size, a prefetch window); `default` when unset.
    pub fn at_least_one_or<T>(&self, key: &str, default: T) -> Result<T, SettingsError>
    where
        T: FromStr + PartialEq + From<u8>,
        T::Err: std::fmt::Display,
    {
        let value = self.parse_or(key, default)?;
        if value == T::from(0) {
            return Err(SettingsError::new(key, "0", "must be at least 1"));
        }
        Ok(value)
    }

    /// A timeout in milliseconds; zero would fail every call, so it is refused.
    pub fn positive_millis_or(&self, key: &str, default: Duration) -> Result<Duration, SettingsError> {
        let timeout = self.millis_or(key, default)?;
        if timeout.is_zero() {
            return Err(SettingsError::new(key, "0", "must be positive"));
        }
        Ok(timeout)
    }

    /// A comma-separated list; `default` when unset.
    pub fn list_or(&self, key: &str, default: &[&str]) -> Vec<String> {
        match self.get(key) {
            None => default.iter().map(|s| (*s).to_owned()).collect(),
            Some(value) => value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        }
    }
}

/// Where a service's HTTP server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    pub host: String,
    /// 0 asks the OS for a free port; the bound port is read back from the listener.
    pub port: u16,
}

impl HttpSettings {
    /// `HOST` (default all interfaces, for containers) and `PORT` (default `default_port`).
    pub fn from_env(env: &Env, default_port: u16) -> Result<Self, SettingsError> {
        Ok(Self { host: env.string_or(HOST, "0.0.0.0"), port: env.parse_or(PORT, default_port)? })
    }

    /// Loopback on a free port: what tests use.
    pub fn ephemeral() -> Self {
        Self { host: "127.0.0.1".into(), port: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_and_blank_values_take_the_default() {
        let env = Env::from_pairs([("BLANK", "  ")]);
        assert_eq!(env.string_or("MISSING", "d"), "d");
        assert_eq!(env.string_or("BLANK", "d"), "d");
        assert_eq!(env.parse_or("MISSING", 7u16).unwrap(), 7);
    }

    #[test]
    fn a_bad_value_is_an_error_that_names_the_variable() {
        let env = Env::from_pairs([("PORT", "eighty")]);
        let error = HttpSettings::from_env(&env, 8080).unwrap_err().to_string();
        assert!(error.contains("PORT=\"eighty\""), "{error}");
    }

    #[test]
    fn lists_and_durations_parse() {
        let env = Env::from_pairs([("ORIGINS", "http://a, http://b,"), ("TIMEOUT_MS", "250")]);
        assert_eq!(env.list_or("ORIGINS", &[]), vec!["http://a", "http://b"]);
        assert_eq!(env.list_or("OTHER", &["x"]), vec!["x"]);
        assert_eq!(env.millis_or("TIMEOUT_MS", Duration::from_secs(1)).unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn counts_and_timeouts_refuse_zero() {
        let env = Env::from_pairs([("POOL", "0"), ("TIMEOUT_MS", "0"), ("OK", "3")]);
        assert_eq!(env.at_least_one_or("POOL", 5u32).unwrap_err().reason, "must be at least 1");
        assert_eq!(env.at_least_one_or("OK", 5usize).unwrap(), 3);
        assert_eq!(env.at_least_one_or("UNSET", 5u16).unwrap(), 5);
        assert_eq!(env.positive_millis_or("TIMEOUT_MS", Duration::from_secs(1)).unwrap_err().key, "TIMEOUT_MS");
        assert_eq!(env.positive_millis_or("UNSET", Duration::from_secs(1)).unwrap(), Duration::from_secs(1));
    }

    #[test]
    fn http_settings_default_to_all_interfaces_on_the_service_port() {
        let settings = HttpSettings::from_env(&Env::default(), 8083).unwrap();
        assert_eq!(settings, HttpSettings { host: "0.0.0.0".into(), port: 8083 });
    }
}
