//! The mailer's settings: where the SMTP server is, how to talk to it, and who sends by default.

use std::str::FromStr;
use std::time::Duration;

use lettre::message::Mailbox;
use serde::Deserialize;
use service_kit::amqp::QueueType;
use service_kit::settings::{self, Env, HttpSettings, SecretList, SecretString, SettingsError};
use service_kit::wiring;

/// Everything `Application::build` needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Where the HTTP API listens (`HOST`, `PORT`).
    pub http: HttpSettings,
    /// The SMTP server and the connection pool.
    pub smtp: SmtpSettings,
    /// The queue of mail jobs the broker publishes while the mailer is down.
    pub queue: QueueSettings,
    /// Display name of the default sender (`FROM_NAME`).
    #[serde(rename = "FROM_NAME")]
    pub from_name: String,
    /// Address of the default sender, used when a request has no `from` (`FROM_ADDRESS`).
    #[serde(rename = "FROM_ADDRESS")]
    pub from_address: String,
}

impl Default for Settings {
    /// A local run: maildev on its SMTP port.
    fn default() -> Self {
        Self {
            http: HttpSettings::on_port(wiring::MAILER_PORT),
            smtp: SmtpSettings::default(),
            queue: QueueSettings::default(),
            from_name: "John Smith".into(),
            from_address: "john.smith@example.com".into(),
        }
    }
}

/// How to reach the SMTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SmtpSettings {
    #[serde(rename = "MAIL_HOST")]
    pub host: String,
    #[serde(rename = "MAIL_PORT")]
    pub port: u16,
    /// `AUTH` only when not empty.
    #[serde(rename = "MAIL_USERNAME")]
    pub username: String,
    #[serde(rename = "MAIL_PASSWORD")]
    pub password: SecretString,
    #[serde(rename = "MAIL_ENCRYPTION")]
    pub encryption: Encryption,
    /// The name the mailer gives itself in `EHLO` (the Go original's `MAIL_DOMAIN`).
    #[serde(rename = "MAIL_DOMAIN")]
    pub domain: String,
    /// Bounds connecting (TCP, TLS, greeting), and the readiness check.
    #[serde(rename = "MAIL_CONNECT_TIMEOUT_MS", deserialize_with = "settings::positive_millis")]
    pub connect_timeout: Duration,
    /// Bounds a whole send (waiting for a pooled connection, connecting, the SMTP dialogue), so
    /// that a stuck server gives a 504 instead of a hung request.
    #[serde(rename = "MAIL_SEND_TIMEOUT_MS", deserialize_with = "settings::positive_millis")]
    pub send_timeout: Duration,
    /// Most connections at once (and kept for reuse); requests beyond it wait for a free one.
    #[serde(rename = "MAIL_POOL_SIZE", deserialize_with = "settings::count")]
    pub pool_size: u32,
    /// Idle connections older than this are closed; 0 closes them at the next sweep (100 ms).
    #[serde(rename = "MAIL_POOL_IDLE_TIMEOUT_MS", deserialize_with = "settings::millis")]
    pub pool_idle_timeout: Duration,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: wiring::LOCAL_HOST.into(),
            port: wiring::SMTP_PORT,
            username: String::new(),
            password: SecretString::default(),
            encryption: Encryption::None,
            domain: "localhost".into(),
            connect_timeout: Duration::from_secs(5),
            send_timeout: Duration::from_secs(10),
            pool_size: 10,
            pool_idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Where the mail jobs wait, and how the mailer takes them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct QueueSettings {
    /// RabbitMQ's nodes, comma-separated; may carry credentials (`RABBIT_URL`).
    #[serde(rename = "RABBIT_URL")]
    pub rabbit_url: SecretList,
    /// `classic` or `quorum` for the job queue and its dead letters (`QUEUE_TYPE`); the
    /// broker must say the same, as it declares them too.
    #[serde(rename = "QUEUE_TYPE")]
    pub queue_type: QueueType,
    /// The exchange the broker publishes mail jobs to (`MAIL_EXCHANGE`, `mail`).
    #[serde(rename = "MAIL_EXCHANGE")]
    pub exchange: String,
    /// The queue the mailer replicas share (`MAIL_QUEUE`, `mail`).
    #[serde(rename = "MAIL_QUEUE")]
    pub queue: String,
    /// Unacknowledged jobs at once (`MAIL_PREFETCH`): each is one send in flight.
    #[serde(rename = "MAIL_PREFETCH", deserialize_with = "settings::count")]
    pub prefetch: u16,
    /// First delay of every backoff: reconnecting to RabbitMQ, sending a job again while the
    /// SMTP server is down (`MAIL_RETRY_MIN_MS`).
    #[serde(rename = "MAIL_RETRY_MIN_MS", deserialize_with = "settings::positive_millis")]
    pub retry_min: Duration,
    /// Longest delay of every backoff (`MAIL_RETRY_MAX_MS`).
    #[serde(rename = "MAIL_RETRY_MAX_MS", deserialize_with = "settings::positive_millis")]
    pub retry_max: Duration,
    /// The AMQP connection's name in `rabbitmqctl list_connections` (`MAIL_CONNECTION_NAME`).
    #[serde(rename = "MAIL_CONNECTION_NAME")]
    pub connection_name: String,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            rabbit_url: wiring::RABBIT_URL.into(),
            queue_type: QueueType::default(),
            exchange: contract::mail::EXCHANGE.into(),
            queue: contract::mail::DEFAULT_QUEUE.into(),
            // About the SMTP pool's size: more would only wait for a connection.
            prefetch: 10,
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(10),
            connection_name: "mailer".into(),
        }
    }
}

impl QueueSettings {
    pub fn topology(&self) -> service_kit::amqp::Topology {
        service_kit::amqp::Topology::mail(&self.exchange, &self.queue).with_queue_type(self.queue_type)
    }
}

/// `MAIL_ENCRYPTION`, with the Go original's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
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

impl TryFrom<String> for Encryption {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl Settings {
    /// Reads the settings; unset values take the defaults of a local run (maildev on 1025).
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let settings: Self = env.read(wiring::MAILER_PORT, &["smtp", "queue"])?;
        if settings.queue.retry_max < settings.queue.retry_min {
            let value = settings.queue.retry_max.as_millis().to_string();
            return Err(SettingsError::new("MAIL_RETRY_MAX_MS", &value, "must not be below MAIL_RETRY_MIN_MS"));
        }
        settings.default_sender()?;
        Ok(settings)
    }

    /// `FROM_NAME <FROM_ADDRESS>`, checked like a request's `from`.
    pub fn default_sender(&self) -> Result<Mailbox, SettingsError> {
        let address = crate::domain::MailAddress::parse("from", &self.from_address)
            .map_err(|e| SettingsError::new("FROM_ADDRESS", &self.from_address, &e.problem))?;
        contract::validate::single_line("from", &self.from_name)
            .map_err(|e| SettingsError::new("FROM_NAME", &self.from_name, &e.problem))?;
        let name = Some(self.from_name.trim().to_owned()).filter(|name| !name.is_empty());
        Ok(Mailbox::new(name, address.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use service_kit::ExposeSecret;

    use super::*;

    #[test]
    fn defaults_point_at_the_local_catcher() {
        let settings = Settings::from_env(&Env::default()).unwrap();
        assert_eq!(settings.http.port, 8085);
        assert_eq!((settings.smtp.host.as_str(), settings.smtp.port), ("127.0.0.1", 1025));
        assert_eq!(settings.smtp.encryption, Encryption::None);
        assert_eq!(settings.smtp.domain, "localhost");
        assert!(settings.smtp.username.is_empty() && settings.smtp.password.expose_secret().is_empty());
        assert_eq!(settings.default_sender().unwrap().to_string(), "John Smith <john.smith@example.com>");
        assert_eq!((settings.queue.exchange.as_str(), settings.queue.queue.as_str()), ("mail", "mail"));
        assert_eq!(settings.queue.rabbit_url.first().expose_secret(), wiring::RABBIT_URL);
        assert_eq!(settings.queue.topology().queue_type, QueueType::Classic);
    }

    #[test]
    fn encryption_takes_the_go_originals_values() {
        for (value, expected) in [("none", Encryption::None), ("tls", Encryption::StartTls), ("SSL", Encryption::Tls)] {
            let env = Env::from_pairs([("MAIL_ENCRYPTION", value)]);
            assert_eq!(Settings::from_env(&env).unwrap().smtp.encryption, expected, "{value}");
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases = [
            ("MAIL_ENCRYPTION", "maybe"),
            ("MAIL_PORT", "smtp"),
            ("MAIL_POOL_SIZE", "0"),
            ("MAIL_SEND_TIMEOUT_MS", "soon"),
            ("MAIL_SEND_TIMEOUT_MS", "0"),
            ("MAIL_CONNECT_TIMEOUT_MS", "0"),
            ("FROM_ADDRESS", "not an address"),
            ("FROM_NAME", "Evil\r\nBcc: x@y.z"),
            ("MAIL_PREFETCH", "0"),
            ("MAIL_RETRY_MIN_MS", "0"),
            ("MAIL_RETRY_MAX_MS", "1"),
        ];
        for (key, value) in cases {
            let error = Settings::from_env(&Env::from_pairs([(key, value)])).unwrap_err();
            assert_eq!(error.key, key, "{key}={value:?}: {error}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let env = Env::from_pairs([("MAIL_USERNAME", "user"), ("MAIL_PASSWORD", "hunter2")]);
        let shown = format!("{:?}", Settings::from_env(&env).unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
