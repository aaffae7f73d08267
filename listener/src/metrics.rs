//! The listener's metrics (besides the HTTP server's, which `service_kit::metrics` records):
//! what became of the deliveries, how many are in hand, whether it is consuming.

use service_kit::metrics::{describe_counter, describe_gauge};

/// Deliveries taken off the queue.
pub const RECEIVED: &str = "listener_deliveries_received_total";
/// Of those, the ones RabbitMQ had delivered before (a lost ack, a replica that died).
pub const REDELIVERED: &str = "listener_deliveries_redelivered_total";
/// Deliveries stored through the logger (or found stored already), then acked.
pub const STORED: &str = "listener_deliveries_stored_total";
/// Deliveries rejected to the dead-letter queue.
pub const DEAD_LETTERED: &str = "listener_deliveries_dead_lettered_total";
/// Deliveries held (unacked, retried without counting) because the logger or its store was down
/// or overloaded; each counted once however long it was held.
pub const HELD: &str = "listener_deliveries_held_total";
/// Deliveries in hand now: received, not yet acked or rejected.
pub const IN_FLIGHT: &str = "listener_deliveries_in_flight";
/// 1 while consuming, 0 while connecting or reconnecting.
pub const CONNECTED: &str = "listener_consumer_connected";

/// Describes the listener's metrics (and installs the recorder, so that nothing is lost).
pub fn describe() {
    service_kit::metrics::handle();
    describe_counter!(RECEIVED, "Deliveries taken off the queue.");
    describe_counter!(REDELIVERED, "Deliveries that RabbitMQ had delivered before.");
    describe_counter!(STORED, "Deliveries stored through the logger and acked.");
    describe_counter!(DEAD_LETTERED, "Deliveries rejected to the dead-letter queue.");
    describe_counter!(HELD, "Deliveries held for a logger outage or overload (each counted once).");
    describe_gauge!(IN_FLIGHT, "Deliveries in hand: received, not yet acked or rejected.");
    describe_gauge!(CONNECTED, "1 while the consumer is consuming, else 0.");
}
