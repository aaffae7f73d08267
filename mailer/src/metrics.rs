//! The mailer's metrics (besides the HTTP server's, which `service_kit::metrics` records),
//! recorded where every mail is sent ([`crate::smtp::SmtpMailer::send`]), whoever asked for it.

use service_kit::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Mails handed to the SMTP server, by `outcome` (`sent`, `refused`, `unreachable`, `timeout`).
pub const MAILS: &str = "mailer_mails_total";
/// One send, waiting for a pooled connection included, by `outcome`.
pub const SMTP_DURATION: &str = "mailer_smtp_send_duration_seconds";
/// SMTP connections open in the pool (deadpool's size), after the latest send.
pub const POOL_CONNECTIONS: &str = "mailer_smtp_pool_connections";
/// Of those, the ones handed out to a send, after the latest send.
pub const POOL_IN_USE: &str = "mailer_smtp_pool_connections_in_use";
/// 1 while the mail-job consumer is consuming, 0 while connecting or reconnecting.
pub const JOBS_CONNECTED: &str = "mailer_jobs_consumer_connected";

/// Describes the mailer's metrics (and installs the recorder, so that nothing is lost).
pub fn describe() {
    service_kit::metrics::handle();
    describe_counter!(MAILS, "Mails handed to the SMTP server, by outcome.");
    describe_histogram!(
        SMTP_DURATION,
        Unit::Seconds,
        "Duration of one SMTP send (the wait for a connection included), by outcome."
    );
    describe_gauge!(POOL_CONNECTIONS, "SMTP connections open in the pool.");
    describe_gauge!(POOL_IN_USE, "SMTP connections of the pool in use by a send.");
    describe_gauge!(JOBS_CONNECTED, "1 while the mail-job consumer is consuming, else 0.");
}
