//! The mailer's settings: where the SMTP server is, how to talk to it, and who sends by default.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use lettre::message::Mailbox;
use service_kit::{Env, HttpSettings, SettingsError};

/// The HTTP port when `PORT` is unset.
pub const DEFAULT_PORT: u16 = 8085;

/// Name the mailer gives itself in `EHLO` (the Go original's `MAIL_DOMAIN`).
pub const MAIL_DOMAIN: &str = "MAIL_DOMAIN";
pub const MAIL_HOST: &str = "MAIL_HOST";
pub const MAIL_PORT: &str = "MAIL_PORT";
/// Empty username: no `AUTH`.
pub const MAIL_USERNAME: &str = "MAIL_USERNAME";
pub const MAIL_PASSWORD: &str = "MAIL_PASSWORD";
/// `none`, `tls` (STARTTLS required) or `ssl` (TLS from the first byte).
pub const MAIL_ENCRYPTION: &str = "MAIL_ENCRYPTION";
/// Milliseconds to open a connection (TCP, TLS, greeting).
pub const MAIL_CONNECT_TIMEOUT_MS: &str = "MAIL_CONNECT_TIMEOUT_MS";
/// Milliseconds for one whole send: waiting for a pooled connection, connecting and the SMTP dialogue.
pub const MAIL_SEND_TIMEOUT_MS: &str = "MAIL_SEND_TIMEOUT_MS";
/// Most SMTP connections open at once (and kept for reuse).
pub const MAIL_POOL_SIZE: &str = "MAIL_POOL_SIZE";
/// Milliseconds an unused pooled connection is kept.
pub const MAIL_POOL_IDLE_TIMEOUT_MS: &str = "MAIL_POOL_IDLE_TIMEOUT_MS";
/// Display name of the default sender.
pub const FROM_NAME: &str = "FROM_NAME";
/// Address of the default sender, used when a request has no `from`.
pub const FROM_ADDRESS: &str = "FROM_ADDRESS";

/// Everything `Application::build` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the HTTP API listens (`HOST`, `PORT`).
    pub http: HttpSettings,
    /// The SMTP server and the connection pool.
    pub smtp: SmtpSettings,
    /// Display name of the default sender (`FROM_NAME`).
    pub from_name: String,
    /// Address of the default sender (`FROM_ADDRESS`).
    pub from_address: String,
}

/// How to reach the SMTP server.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// `AUTH` only when not empty.
    pub username: String,
    pub password: String,
    pub encryption: Encryption,
    /// The `EHLO` name.
    pub domain: String,
    /// Bounds connecting, and the readiness check.
    pub connect_timeout: Duration,
    /// Bounds a whole send, so that a stuck server gives a 504 instead of a hung request.
    pub send_timeout: Duration,
    /// Most connections at once; requests beyond it wait for a free connection.
    pub pool_size: u32,
    /// Idle connections older than this are closed.
    pub pool_idle_timeout: Duration,
}

// The password never reaches a log line.
impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &if self.password.is_empty() { "" } else { "<redacted>" })
            .field("encryption", &self.encryption)
            .field("domain", &self.domain)
            .field("connect_timeout", &self.connect_timeout)
            .field("send_timeout", &self.send_timeout)
            .field("pool_size", &self.pool_size)
            .field("pool_idle_timeout", &self.pool_idle_timeout)
            .finish()
    }
}

/// `MAIL_ENCRYPTION`, with the Go original's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encryption {
    /// Plain SMTP: for a catcher or relay on a trusted network.
    #[default]
    None,
    /// `tls`: plain connection upgraded with STARTTLS, which the server must offer.
    StartTls,
    /// `ssl`: TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

impl FromStr for Encryption {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "none" => Ok(Encryption::None),
            "tls" | "starttls" => Ok(Encryption::StartTls),
            "ssl" => Ok(Encryption::Tls),
            _ => Err("expected none, tls (STARTTLS) or ssl (implicit TLS)".to_owned()),
        }
    }
}

impl Settings {
    /// Reads the settings; unset values take the defaults of a local run (maildev on 1025).
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let pool_size: u32 = env.at_least_one_or(MAIL_POOL_SIZE, 10)?;
        let settings = Self {
            http: HttpSettings::from_env(env, DEFAULT_PORT)?,
            smtp: SmtpSettings {
                host: env.string_or(MAIL_HOST, "127.0.0.1"),
                port: env.parse_or(MAIL_PORT, 1025)?,
                username: env.string_or(MAIL_USERNAME, ""),
                password: env.string_or(MAIL_PASSWORD, ""),
                encryption: env.parse_or(MAIL_ENCRYPTION, Encryption::None)?,
                domain: env.string_or(MAIL_DOMAIN, "localhost"),
                connect_timeout: env.millis_or(MAIL_CONNECT_TIMEOUT_MS, Duration::from_secs(5))?,
                send_timeout: env.millis_or(MAIL_SEND_TIMEOUT_MS, Duration::from_secs(10))?,
                pool_size,
                pool_idle_timeout: env.millis_or(MAIL_POOL_IDLE_TIMEOUT_MS, Duration::from_secs(60))?,
            },
            from_name: env.string_or(FROM_NAME, "John Smith"),
            from_address: env.string_or(FROM_ADDRESS, "john.smith@example.com"),
        };
        settings.default_sender()?;
        Ok(settings)
    }

    /// `FROM_NAME <FROM_ADDRESS>`, checked like a request's `from`.
    pub fn default_sender(&self) -> Result<Mailbox, SettingsError> {
        let address = crate::domain::MailAddress::parse("from", &self.from_address)
            .map_err(|e| SettingsError::new(FROM_ADDRESS, &self.from_address, &e.problem))?;
        contract::validate::single_line("from", &self.from_name)
            .map_err(|e| SettingsError::new(FROM_NAME, &self.from_name, &e.problem))?;
        let name = Some(self.from_name.trim().to_owned()).filter(|name| !name.is_empty());
        Ok(Mailbox::new(name, address.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_point_at_the_local_catcher() {
        let settings = Settings::from_env(&Env::default()).unwrap();
        assert_eq!(settings.http.port, 8085);
        assert_eq!((settings.smtp.host.as_str(), settings.smtp.port), ("127.0.0.1", 1025));
        assert_eq!(settings.smtp.encryption, Encryption::None);
        assert_eq!(settings.smtp.domain, "localhost");
        assert!(settings.smtp.username.is_empty() && settings.smtp.password.is_empty());
        assert_eq!(settings.default_sender().unwrap().to_string(), "John Smith <john.smith@example.com>");
    }

    #[test]
    fn encryption_takes_the_go_originals_values() {
        for (value, expected) in [("none", Encryption::None), ("tls", Encryption::StartTls), ("SSL", Encryption::Tls)] {
            let env = Env::from_pairs([(MAIL_ENCRYPTION, value)]);
            assert_eq!(Settings::from_env(&env).unwrap().smtp.encryption, expected, "{value}");
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases = [
            (MAIL_ENCRYPTION, "maybe"),
            (MAIL_PORT, "smtp"),
            (MAIL_POOL_SIZE, "0"),
            (MAIL_SEND_TIMEOUT_MS, "soon"),
            (FROM_ADDRESS, "not an address"),
            (FROM_NAME, "Evil\r\nBcc: x@y.z"),
        ];
        for (key, value) in cases {
            let error = Settings::from_env(&Env::from_pairs([(key, value)])).unwrap_err();
            assert_eq!(error.key, key, "{key}={value:?}: {error}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let env = Env::from_pairs([(MAIL_USERNAME, "user"), (MAIL_PASSWORD, "hunter2")]);
        let shown = format!("{:?}", Settings::from_env(&env).unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
