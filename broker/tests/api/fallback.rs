//! Degraded answers: a `log` while the logger is down takes the event path and is stored once
//! the logger is back, whether the logger was unreachable or its circuit already open.

use std::collections::HashSet;
use std::time::Duration;

use broker::breaker::BreakerSettings;
use mongodb::bson::doc;
use serde_json::json;
use service_kit::testing::proxy::{Mode, Proxy, url_addr};
use service_kit::testing::{eventually, unique_name};

use crate::helpers::spawn_broker;
use crate::stack::{listener_settings, spawn_listener, spawn_stack, wait_until_ready};

#[tokio::test]
async fn a_log_while_the_logger_is_down_is_accepted_through_rabbitmq_and_stored_once_it_is_back() {
    let stack = spawn_stack().await;
    // The logger as the broker and a listener of its own see it: behind a proxy the test takes down.
    let proxy = Proxy::forward(url_addr(&format!("tcp://{}", stack.logger.rpc_addr))).await;
    let proxied = proxy.addr.to_string();
    stack.listener.stop().await;
    let (listener, listener_ready) =
        spawn_listener(listener_settings(&proxied, &stack.topology.exchange, &stack.topology.queue)).await;
    let failures = 3;
    let mut settings = stack.broker.settings.clone();
    settings.logger_rpc_addr = proxied.clone();
    settings.breaker = BreakerSettings { failures, open_for: Duration::from_secs(30), ..BreakerSettings::default() };
    let app = spawn_broker(settings).await;
    wait_until_ready(&app.http, &listener_ready).await;

    proxy.set(Mode::Down);
    let name = unique_name("fallback");
    let sent = 10;
    for n in 0..sent {
        let answer = app.handle(&json!({"action": "log", "log": {"name": name, "data": format!("entry {n}")}})).await;
        assert_eq!(
            (answer.status, answer.message()),
            (202, "logged via RabbitMQ (logger unavailable)"),
            "entry {n}: {}",
            answer.body
        );
    }
    // The first calls found the logger unreachable, the rest its circuit open: both fell back.
    let ready = app.get("/ready").await;
    let logger = ready.body["data"]["logger"].as_str().unwrap_or_default().to_owned();
    assert!(logger.contains("circuit open"), "after {failures} failures the circuit is open: {}", ready.body);
    assert!(stack.stored(doc! {"name": &name}).await.is_empty(), "nothing can be stored while the logger is down");

    proxy.set(Mode::Up);
    let stored = eventually("every entry stored once the logger is back", Duration::from_secs(20), || async {
        let stored = stack.stored(doc! {"name": &name}).await;
        (stored.len() >= sent).then_some(stored)
    })
    .await;
    assert_eq!(stored.len(), sent, "each entry stored once");
    let data: HashSet<String> = stored.iter().map(|entry| entry.get_str("data").expect("data").to_owned()).collect();
    assert_eq!(data, (0..sent).map(|n| format!("entry {n}")).collect(), "every entry, none twice");
    assert!(stored.iter().all(|entry| entry.get_str("event_id").is_ok()), "stored through the event path: {stored:?}");

    listener.stop().await;
    stack.cleanup().await;
}
