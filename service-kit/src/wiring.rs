//! The local wiring, defined once: every port, address, database, exchange and queue name a
//! service defaults to when started with no settings, so that it finds its neighbours on one
//! machine (DESIGN.md's port table). Service settings take their defaults from here, the test
//! support points at the same servers, and `project/wiring.env` (read by the scripts, checked
//! against compose, Kubernetes and the Dockerfile by the system tests) holds the same values.

/// HTTP ports of the six processes.
pub const BROKER_PORT: u16 = 8080;
pub const FRONTEND_PORT: u16 = 8081;
pub const AUTHENTICATION_PORT: u16 = 8083;
pub const LOGGER_PORT: u16 = 8084;
pub const MAILER_PORT: u16 = 8085;
pub const LISTENER_PORT: u16 = 8086;
/// The logger's tarpc server.
pub const LOGGER_RPC_PORT: u16 = 5001;

/// Infrastructure ports.
pub const POSTGRES_PORT: u16 = 5432;
pub const MONGO_PORT: u16 = 27017;
pub const RABBIT_PORT: u16 = 5672;
pub const SMTP_PORT: u16 = 1025;
/// The SMTP catcher's web UI and HTTP API.
pub const MAILCATCHER_PORT: u16 = 8025;

/// Where the services look for each other and for the infrastructure by default.
pub const LOCAL_HOST: &str = "127.0.0.1";
pub const AUTH_URL: &str = "http://127.0.0.1:8083";
pub const MAILER_URL: &str = "http://127.0.0.1:8085";
pub const LOGGER_RPC_ADDR: &str = "127.0.0.1:5001";
pub const RABBIT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const MONGO_URL: &str = "mongodb://127.0.0.1:27017";
/// The authentication service's database (created by the local launcher when missing).
pub const POSTGRES_DB: &str = "users";
pub const DSN: &str = "postgres://postgres:password@127.0.0.1:5432/users";
/// The logger's database, and its collection in it.
pub const MONGO_DB: &str = "logs";
pub const MONGO_COLLECTION: &str = "logs";
/// What the browser uses: the page is opened as `localhost`, so these are too.
pub const BROKER_PUBLIC_URL: &str = "http://localhost:8080";
pub const MAILCATCHER_PUBLIC_URL: &str = "http://localhost:8025";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_urls_agree_with_the_ports() {
        assert!(AUTH_URL.ends_with(&format!(":{AUTHENTICATION_PORT}")));
        assert!(MAILER_URL.ends_with(&format!(":{MAILER_PORT}")));
        assert!(LOGGER_RPC_ADDR.ends_with(&format!(":{LOGGER_RPC_PORT}")));
        assert!(RABBIT_URL.contains(&format!(":{RABBIT_PORT}/")));
        assert!(MONGO_URL.ends_with(&format!(":{MONGO_PORT}")));
        assert!(DSN.ends_with(&format!(":{POSTGRES_PORT}/{POSTGRES_DB}")));
        assert!(BROKER_PUBLIC_URL.ends_with(&format!(":{BROKER_PORT}")));
        assert!(MAILCATCHER_PUBLIC_URL.ends_with(&format!(":{MAILCATCHER_PORT}")));
    }
}
