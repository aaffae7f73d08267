//! The broker's metrics (besides the HTTP server's, which `service_kit::metrics` records): every
//! hop of `/handle` by downstream, action and outcome, the events it publishes, and each
//! downstream's circuit. Label values are the fixed names below, never anything a caller sent.

use std::time::Duration;

use service_kit::metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use crate::downstream::{DownstreamError, Service};

/// One hop, from the breaker's admission to its outcome (a refusal of an open circuit is one
/// too, of about no time): labels `downstream`, `action`, `outcome`.
pub const DOWNSTREAM_DURATION: &str = "broker_downstream_request_duration_seconds";
/// Events published to RabbitMQ, by `action` (`event`, `log` on the fallback path, `auth` for
/// login events) and `outcome`.
pub const EVENTS_PUBLISHED: &str = "broker_events_published_total";
/// From the publish to RabbitMQ's confirm (or the failure), for publishes the breaker let
/// through: labels `outcome`.
pub const PUBLISH_CONFIRM_DURATION: &str = "broker_event_publish_confirm_duration_seconds";
/// Each downstream's circuit: 0 closed, 1 half-open, 2 open (set on every change of state; an
/// open circuit whose interval is over shows 2 until the next call half-opens it).
pub const BREAKER_STATE: &str = "broker_circuit_breaker_state";

/// Describes the broker's metrics (and installs the recorder, so that nothing is lost).
pub fn describe() {
    service_kit::metrics::handle();
    describe_histogram!(
        DOWNSTREAM_DURATION,
        Unit::Seconds,
        "Duration of the broker's calls to its downstreams, by downstream, action and outcome."
    );
    describe_counter!(EVENTS_PUBLISHED, "Events the broker published to RabbitMQ, by action and outcome.");
    describe_histogram!(
        PUBLISH_CONFIRM_DURATION,
        Unit::Seconds,
        "Time from publishing an event to RabbitMQ's confirm, by outcome."
    );
    describe_gauge!(BREAKER_STATE, "Circuit breaker state per downstream: 0 closed, 1 half-open, 2 open.");
}

/// The `downstream` label.
pub fn downstream_label(service: Service) -> &'static str {
    match service {
        Service::Authentication => "authentication",
        Service::Logger => "logger",
        Service::Mailer => "mailer",
        Service::RabbitMq => "rabbitmq",
    }
}

/// The `outcome` label of a hop.
pub fn outcome<T>(result: &Result<T, DownstreamError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(DownstreamError::Rejected { .. }) => "rejected",
        Err(DownstreamError::Unavailable { .. }) => "unavailable",
        Err(DownstreamError::Timeout { .. }) => "timeout",
        Err(DownstreamError::Unreachable { .. }) => "unreachable",
        Err(DownstreamError::Failed { .. }) => "failed",
        Err(DownstreamError::CircuitOpen { .. }) => "circuit_open",
    }
}

pub fn record_hop(service: Service, action: &'static str, outcome: &'static str, took: Duration) {
    histogram!(DOWNSTREAM_DURATION, "downstream" => downstream_label(service), "action" => action, "outcome" => outcome)
        .record(took);
}

pub fn record_publish(action: &'static str, outcome: &'static str) {
    counter!(EVENTS_PUBLISHED, "action" => action, "outcome" => outcome).increment(1);
}

pub fn record_confirm(outcome: &'static str, took: Duration) {
    histogram!(PUBLISH_CONFIRM_DURATION, "outcome" => outcome).record(took);
}

/// The breaker state as [`BREAKER_STATE`] shows it.
#[derive(Debug, Clone, Copy)]
pub enum CircuitState {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

pub fn record_circuit(service: Service, state: CircuitState) {
    gauge!(BREAKER_STATE, "downstream" => downstream_label(service)).set(state as i32 as f64);
}
