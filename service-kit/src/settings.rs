//! Typed settings, read once at start-up from environment variables.
//!
//! Each service's `Settings` derives `Deserialize`: a field names its variable
//! (`#[serde(rename = "AUTH_URL")]`), its default is the struct's `Default` (pointing at
//! [`crate::wiring`]), and a duration, count or list goes through the one deserializer below
//! for its kind ([`millis`], [`positive_millis`], [`count`], [`list`]), so every service checks
//! them the same way. A nested struct (`http`, `database`, ...) is a *section*: it reads from
//! the same flat variables, since the names stay those of the deployment files.
//!
//! [`Env::read`] does the reading with `figment`, whose errors carry the field's path and so
//! the variable's name. Tests build the structs directly (port 0, a per-test database), or
//! read a literal [`Env::from_pairs`]; nobody calls `set_var`.
//!
//! Secrets (DSNs, AMQP and Mongo URLs, SMTP passwords) are [`SecretString`]s: their `Debug`
//! shows `[REDACTED]`, so no settings log line carries a password.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use figment::Figment;
use figment::error::Kind;
use figment::providers::Serialized;
use figment::value::{Dict, Value};
pub use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error as _, Visitor};

/// Variable names common to every service.
pub const PORT: &str = "PORT";
pub const RUST_LOG: &str = "RUST_LOG";
pub const LOG_FORMAT: &str = "LOG_FORMAT";

/// How long a request's header section, and then its body, may each take to arrive.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a service listens unless `HOST` says otherwise: every interface, for containers.
pub const ALL_INTERFACES: &str = "0.0.0.0";

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

/// Where settings come from: the process environment, or a map in tests. Values are trimmed;
/// a blank one counts as unset. (No `Debug`: the values hold secrets.)
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// A snapshot of the process environment.
    pub fn process() -> Self {
        Self::from_pairs(std::env::vars())
    }

    /// A literal environment, for tests and examples.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into().trim().to_owned()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        Self { vars }
    }

    /// The value when set and not blank.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// A service's settings `T`. `PORT` defaults to `default_port`; `http` and every name in
    /// `sections` are nested structs read from the same variables as the top level.
    pub fn read<T: DeserializeOwned>(&self, default_port: u16, sections: &[&str]) -> Result<T, SettingsError> {
        let mut vars: Dict = self.vars.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
        vars.entry(PORT.to_owned()).or_insert_with(|| Value::from(default_port));
        let mut nested = vars.clone();
        for section in std::iter::once("http").chain(sections.iter().copied()) {
            nested.insert(section.to_owned(), Value::from(vars.clone()));
        }
        // "Lossy": a number or a flag may be given as a string, as every variable is.
        Figment::from(Serialized::defaults(nested)).extract_lossy().map_err(|error| self.error(error))
    }

    /// The variable is the last part of the failing field's path.
    fn error(&self, error: figment::Error) -> SettingsError {
        let key = match &error.kind {
            Kind::MissingField(field) => field.to_string(),
            _ => error.path.last().cloned().unwrap_or_default(),
        };
        let reason = match &error.kind {
            // The value is in the message already; say what was expected of it.
            Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) => format!("expected {expected}"),
            kind => kind.to_string(),
        };
        SettingsError { value: self.get(&key).unwrap_or_default().to_owned(), key, reason }
    }
}

/// The `Host` names a service answers unless `ALLOWED_HOSTS` says otherwise: a local run and
/// the service names of docker-compose and Kubernetes (`project/docker-compose.yml`,
/// `project/k8s/`), on any port.
pub const DEFAULT_ALLOWED_HOSTS: [&str; 9] =
    ["localhost", "127.0.0.1", "[::1]", "broker", "frontend", "authentication", "logger", "mailer", "listener"];

/// A service's HTTP server: where it listens, `HOST` (default all interfaces) and `PORT`
/// (default the service's own, given to [`Env::read`]), how long a client may take to send
/// a request, `BODY_TIMEOUT_MS`, and the `Host` names it answers, `ALLOWED_HOSTS`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HttpSettings {
    #[serde(rename = "HOST", default = "all_interfaces")]
    pub host: String,
    /// 0 asks the OS for a free port; the bound port is read back from the listener.
    #[serde(rename = "PORT")]
    pub port: u16,
    /// The bound on the header section (actix's client request timeout) and then on the body
    /// (`http::bounded_body`): a stalled request is answered with 408 and its connection closed.
    #[serde(rename = "BODY_TIMEOUT_MS", default = "default_body_timeout", deserialize_with = "positive_millis")]
    pub body_timeout: Duration,
    /// The `Host` names (without port; any port goes) this server answers, comma-separated; `*`
    /// answers any. Against DNS rebinding: a page on another site that makes its own name
    /// resolve to 127.0.0.1 sends its own name as `Host`, and is refused (`http::allowed_host`).
    /// The whole list is replaced, so a deployment that adds a public name lists the service's
    /// own name too. `/health` and `/ready` answer any `Host` (probes use the pod's IP).
    #[serde(rename = "ALLOWED_HOSTS", default = "default_allowed_hosts", deserialize_with = "list")]
    pub allowed_hosts: Vec<String>,
    /// `HTTP_METRICS=off` stops measuring requests (`http_server_*`; `/metrics` still answers):
    /// only for measuring what the measuring costs (`project/bench/run.sh --cost`).
    #[serde(rename = "HTTP_METRICS", default = "on", deserialize_with = "on_off")]
    pub http_metrics: bool,
}

fn on() -> bool {
    true
}

/// A switch: `on`/`true` or `off`/`false`, in any case.
pub fn on_off<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    match String::deserialize(deserializer)?.to_ascii_lowercase().as_str() {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(serde::de::Error::custom("expected `on` or `off`")),
    }
}

fn default_allowed_hosts() -> Vec<String> {
    DEFAULT_ALLOWED_HOSTS.iter().map(|host| (*host).to_owned()).collect()
}

fn all_interfaces() -> String {
    ALL_INTERFACES.to_owned()
}

fn default_body_timeout() -> Duration {
    DEFAULT_BODY_TIMEOUT
}

impl HttpSettings {
    /// All interfaces on `port`: a service's default.
    pub fn on_port(port: u16) -> Self {
        Self {
            host: all_interfaces(),
            port,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            allowed_hosts: default_allowed_hosts(),
            http_metrics: true,
        }
    }

    /// Loopback on a free port: what tests use.
    pub fn ephemeral() -> Self {
        Self { host: "127.0.0.1".into(), port: 0, ..Self::on_port(0) }
    }
}

/// A duration in whole milliseconds (`*_MS`) where 0 means something (no batching window).
pub fn millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    whole_number(deserializer, "a whole number of milliseconds").map(Duration::from_millis)
}

/// A timeout or delay in whole milliseconds (`*_MS`): 0 would fail every call or retry in a
/// busy loop, so it is refused.
pub fn positive_millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    match millis(deserializer)? {
        Duration::ZERO => Err(D::Error::custom("must be positive")),
        duration => Ok(duration),
    }
}

/// A count (a pool size, a prefetch window, a batch size, attempts): 0 would stall or do
/// nothing, so it is refused rather than raised to 1.
pub fn count<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + PartialEq + From<u8>,
{
    let count = T::deserialize(deserializer)?;
    if count == T::from(0) {
        return Err(D::Error::custom("must be at least 1"));
    }
    Ok(count)
}

/// A comma-separated list; blank items are dropped.
pub fn list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let value = String::deserialize(deserializer)?;
    Ok(value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
}

/// A comma-separated list of secrets (`RABBIT_URL=amqp://u:p@rabbit-0,amqp://u:p@rabbit-1`): the
/// nodes of one cluster, tried in turn. Blank items are dropped; an empty list is refused. Its
/// `Debug` shows how many, never one of them. A comma inside a value is written `%2C`, as a URL
/// has it anyway.
#[derive(Clone)]
pub struct SecretList(Vec<SecretString>);

impl SecretList {
    /// The list of `value`'s comma-separated items; `None` when there is none.
    pub fn parse(value: &str) -> Option<Self> {
        let items: Vec<SecretString> =
            value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(SecretString::from).collect();
        (!items.is_empty()).then_some(Self(items))
    }

    /// The secrets, in the order given.
    pub fn items(&self) -> &[SecretString] {
        &self.0
    }

    /// The first secret: for callers that need one only.
    pub fn first(&self) -> &SecretString {
        &self.0[0]
    }
}

impl fmt::Debug for SecretList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[REDACTED; {}]", self.0.len())
    }
}

/// `"a,b"` is the list of `a` and `b`, as the variable would give it. Panics on a blank value:
/// for defaults and tests, which write their values out.
impl From<&str> for SecretList {
    fn from(value: &str) -> Self {
        Self::parse(value).unwrap_or_else(|| panic!("a SecretList needs at least one item"))
    }
}

impl From<String> for SecretList {
    fn from(value: String) -> Self {
        value.as_str().into()
    }
}

impl<'de> Deserialize<'de> for SecretList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Self::parse(&value).ok_or_else(|| D::Error::custom("must list at least one value"))
    }
}

/// A non-negative integer; `expected` says what for in the error.
fn whole_number<'de, D: Deserializer<'de>>(deserializer: D, expected: &'static str) -> Result<u64, D::Error> {
    struct Whole(&'static str);

    impl Visitor<'_> for Whole {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }

        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<u64, E> {
            Ok(value)
        }
    }

    deserializer.deserialize_u64(Whole(expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One field of each kind, plus a section.
    #[derive(Debug, Deserialize)]
    #[serde(default)]
    struct Probe {
        http: HttpSettings,
        #[serde(rename = "NAME")]
        name: String,
        #[serde(rename = "WINDOW_MS", deserialize_with = "millis")]
        window: Duration,
        #[serde(rename = "TIMEOUT_MS", deserialize_with = "positive_millis")]
        timeout: Duration,
        #[serde(rename = "POOL", deserialize_with = "count")]
        pool: u16,
        #[serde(rename = "ORIGINS", deserialize_with = "list")]
        origins: Vec<String>,
        #[serde(rename = "SECRET")]
        secret: SecretString,
    }

    impl Default for Probe {
        fn default() -> Self {
            Self {
                http: HttpSettings::on_port(1),
                name: "d".into(),
                window: Duration::ZERO,
                timeout: Duration::from_secs(1),
                pool: 5,
                origins: vec!["x".into()],
                secret: "".into(),
            }
        }
    }

    fn read(pairs: &[(&str, &str)]) -> Result<Probe, SettingsError> {
        Env::from_pairs(pairs.iter().copied()).read(8083, &[])
    }

    #[test]
    fn unset_and_blank_values_take_the_default() {
        let probe = read(&[("NAME", "  "), ("HOST", "")]).unwrap();
        assert_eq!(probe.name, "d");
        assert_eq!(probe.http, HttpSettings::on_port(8083));
        assert_eq!(probe.http.allowed_hosts, DEFAULT_ALLOWED_HOSTS);
        assert_eq!((probe.pool, probe.timeout), (5, Duration::from_secs(1)));
        assert_eq!(probe.origins, ["x"]);
    }

    #[test]
    fn values_are_trimmed_and_parsed_whatever_they_look_like() {
        let probe = read(&[
            ("NAME", " 123 "),
            ("PORT", "0"),
            ("HOST", "127.0.0.1"),
            ("WINDOW_MS", "0"),
            ("TIMEOUT_MS", "250"),
            ("POOL", "3"),
            ("ORIGINS", "http://a, http://b,"),
            ("BODY_TIMEOUT_MS", "250"),
            ("ALLOWED_HOSTS", "broker, broker.micro.example.com,"),
            ("HTTP_METRICS", "OFF"),
        ])
        .unwrap();
        assert_eq!(probe.name, "123", "a string that looks like a number stays a string");
        assert_eq!(
            probe.http,
            HttpSettings {
                body_timeout: Duration::from_millis(250),
                allowed_hosts: vec!["broker".into(), "broker.micro.example.com".into()],
                http_metrics: false,
                ..HttpSettings::ephemeral()
            }
        );
        assert_eq!((probe.window, probe.timeout), (Duration::ZERO, Duration::from_millis(250)));
        assert_eq!(probe.pool, 3);
        assert_eq!(probe.origins, ["http://a", "http://b"]);
    }

    #[test]
    fn a_bad_value_is_an_error_that_names_the_variable_and_the_problem() {
        let cases = [
            ("PORT", "eighty", "expected u16"),
            ("PORT", "70000", "expected u16"),
            ("TIMEOUT_MS", "soon", "expected a whole number of milliseconds"),
            ("TIMEOUT_MS", "-1", "expected a whole number of milliseconds"),
            ("TIMEOUT_MS", "1.5", "expected a whole number of milliseconds"),
            ("TIMEOUT_MS", "0", "must be positive"),
            ("WINDOW_MS", "later", "expected a whole number of milliseconds"),
            ("POOL", "0", "must be at least 1"),
            ("BODY_TIMEOUT_MS", "0", "must be positive"),
            ("POOL", "70000", "expected u16"),
            ("POOL", "many", "expected u16"),
        ];
        for (key, value, reason) in cases {
            let error = read(&[(key, value)]).unwrap_err();
            assert_eq!((error.key.as_str(), error.value.as_str(), error.reason.as_str()), (key, value, reason));
            assert_eq!(error.to_string(), format!("setting {key}={value:?} is invalid: {reason}"));
        }
    }

    #[test]
    fn a_secret_list_splits_on_commas_and_shows_only_its_length() {
        let list: SecretList =
            Env::from_pairs([("L", " amqp://u:p1@a , amqp://u:p2@b ,")]).read::<ListProbe>(1, &[]).unwrap().list;
        let items: Vec<&str> = list.items().iter().map(|s| s.expose_secret()).collect();
        assert_eq!(items, ["amqp://u:p1@a", "amqp://u:p2@b"]);
        assert_eq!(format!("{list:?}"), "[REDACTED; 2]");
        assert_eq!(SecretList::from("amqp://one").items().len(), 1);
        let error = Env::from_pairs([("L", " , ")]).read::<ListProbe>(1, &[]).unwrap_err();
        assert_eq!((error.key.as_str(), error.reason.as_str()), ("L", "must list at least one value"));
    }

    #[derive(Debug, Deserialize)]
    #[serde(default)]
    struct ListProbe {
        #[serde(rename = "L")]
        list: SecretList,
    }

    impl Default for ListProbe {
        fn default() -> Self {
            Self { list: "amqp://default".into() }
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let probe = read(&[("SECRET", "amqp://user:hunter2@rabbit/%2f")]).unwrap();
        assert_eq!(probe.secret.expose_secret(), "amqp://user:hunter2@rabbit/%2f");
        let shown = format!("{probe:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
