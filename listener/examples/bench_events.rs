//! End-to-end event throughput: publish with confirms → RabbitMQ → listener → logger → MongoDB.
//!
//! `cargo run --release -p listener --example bench_events [EVENTS]` (default 20,000). Runs a
//! logger and a listener in this process against the local RabbitMQ and MongoDB, on a queue,
//! an exchange and a database of its own (removed afterwards), and reports:
//! - publish: events/s with every publish confirmed by RabbitMQ;
//! - end to end: events/s from the first publish until every event is stored in MongoDB.
//!
//! `BENCH_PREFETCH` sets the listener's prefetch window (default: the listener's, 256), `BENCH_PUBLISHERS` the
//! number of publishes in flight (default 256), `BENCH_IN_FLIGHT_WRITES` the listener's cap on
//! writes in flight to the logger (default: the listener's).

use std::time::{Duration, Instant};

use contract::event::LogEvent;
use contract::log::{Level, LogPayload};
use futures::StreamExt;
use lapin::{Connection, ConnectionProperties};
use mongodb::bson::Document;
use service_kit::amqp::{EventPublisher, Topology};
use service_kit::testing::{self, TestMongo, unique_name};

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let total: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let prefetch: u16 = env_or("BENCH_PREFETCH", listener::Settings::default().prefetch);
    let in_flight: usize = env_or("BENCH_PUBLISHERS", 256);
    let in_flight_writes: usize = env_or("BENCH_IN_FLIGHT_WRITES", listener::Settings::default().max_in_flight_writes);

    let mongo = TestMongo::new();
    let logger = logger::Application::build(logger::Settings::ephemeral(mongo.url.clone(), mongo.name.clone())).await?;
    let logger_addr = format!("127.0.0.1:{}", logger.rpc_port());
    tokio::spawn(logger.run_until_stopped());

    let topology = Topology::new(&unique_name("bench-ex"), &unique_name("bench-q"));
    let mut settings = listener::Settings::ephemeral(
        testing::rabbit_url(),
        logger_addr,
        topology.exchange.clone(),
        topology.queue.clone(),
    );
    settings.prefetch = prefetch;
    settings.max_in_flight_writes = in_flight_writes;
    let listener = listener::Application::build(settings).await?;
    let stop = listener.stop_handle();
    let listening = tokio::spawn(listener.run_until_stopped());

    let publisher = EventPublisher::with_topology(&testing::rabbit_url(), topology.clone(), Duration::from_secs(10))?;
    publisher.ping().await?;
    let events: Vec<LogEvent> = (0..total)
        .map(|i| {
            let payload = LogPayload {
                name: format!("bench event {i}").try_into().unwrap(),
                data: format!("payload of event {i}, about as long as a real log line").try_into().unwrap(),
                level: Some(Level::ALL[i % 3]),
            };
            LogEvent::new(payload, None)
        })
        .collect();
    let client = mongo.client().await;
    let logs = client.database(&mongo.name).collection::<Document>("logs");

    println!(
        "{total} events, {in_flight} publishes in flight, listener prefetch {prefetch}, {in_flight_writes} writes in flight"
    );
    let started = Instant::now();
    let failures = futures::stream::iter(&events)
        .map(|event| publisher.publish(event))
        .buffer_unordered(in_flight)
        .filter(|result| std::future::ready(result.is_err()))
        .count()
        .await;
    let published = started.elapsed();
    anyhow::ensure!(failures == 0, "{failures} publishes failed");

    let mut stored = 0;
    while stored < total as u64 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        stored = logs.count_documents(Document::new()).await?;
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "only {stored} of {total} stored after 10 min");
    }
    let end_to_end = started.elapsed();
    let rate = |elapsed: Duration| total as f64 / elapsed.as_secs_f64();
    println!("publish (confirmed):  {:>8.0} events/s  ({published:.2?})", rate(published));
    println!("end to end (stored):  {:>8.0} events/s  ({end_to_end:.2?})", rate(end_to_end));
    anyhow::ensure!(stored == total as u64, "{stored} documents for {total} events");

    stop.stop().await;
    listening.await??;
    let connection = Connection::connect(&testing::rabbit_url(), ConnectionProperties::default()).await?;
    topology.delete(&connection.create_channel().await?).await?;
    Ok(())
}
