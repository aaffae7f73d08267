//! The authentication service's metrics (besides the HTTP server's, which `service_kit::metrics`
//! records). Label values are the fixed names below.

use service_kit::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// `POST /authenticate` answers, by `outcome` ([`crate::routes::authenticate`] names them).
pub const LOGINS: &str = "auth_logins_total";
/// Verifies admitted and waiting for a bcrypt worker (the queue in front of the workers).
pub const BCRYPT_QUEUE_DEPTH: &str = "auth_bcrypt_queue_depth";
/// One bcrypt verify on a worker (not the wait for it).
pub const BCRYPT_VERIFY_DURATION: &str = "auth_bcrypt_verify_duration_seconds";

/// Describes the service's metrics (and installs the recorder, so that nothing is lost).
pub fn describe() {
    service_kit::metrics::handle();
    describe_counter!(LOGINS, "Login attempts answered, by outcome.");
    describe_gauge!(BCRYPT_QUEUE_DEPTH, "Password verifies waiting for a bcrypt worker.");
    describe_histogram!(BCRYPT_VERIFY_DURATION, Unit::Seconds, "Duration of one bcrypt password verify.");
}
