//! The logger's metrics (besides the HTTP server's, which `service_kit::metrics` records).
//! Label values are fixed names: the store operations are the literals of `store.rs`.

use std::time::Duration;

use service_kit::metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

/// Entries an insert stored, or found stored already (a redelivered event).
pub const ENTRIES_WRITTEN: &str = "logger_entries_written_total";
/// Entries per `insert_many` (1 when grouping is off or the logger is idle).
pub const BATCH_SIZE: &str = "logger_insert_batch_size";
/// One MongoDB operation, by `operation` (`insert`, `list entries`, ...) and `outcome`
/// (`ok`, `duplicate`, `error`, `timeout`).
pub const STORE_DURATION: &str = "logger_store_operation_duration_seconds";
/// MongoDB operations that failed or did not answer in time, by `operation` and `outcome`.
pub const STORE_ERRORS: &str = "logger_store_errors_total";

/// Describes the logger's metrics (and installs the recorder, so that nothing is lost).
pub fn describe() {
    service_kit::metrics::handle();
    describe_counter!(ENTRIES_WRITTEN, "Log entries stored (or found already stored for their event id).");
    describe_histogram!(BATCH_SIZE, "Entries per MongoDB insert_many.");
    describe_histogram!(STORE_DURATION, Unit::Seconds, "Duration of MongoDB operations, by operation and outcome.");
    describe_counter!(STORE_ERRORS, "MongoDB operations that failed or timed out, by operation and outcome.");
}

pub fn record_store(operation: &'static str, outcome: &'static str, took: Duration) {
    histogram!(STORE_DURATION, "operation" => operation, "outcome" => outcome).record(took);
    if matches!(outcome, "error" | "timeout") {
        counter!(STORE_ERRORS, "operation" => operation, "outcome" => outcome).increment(1);
    }
}
