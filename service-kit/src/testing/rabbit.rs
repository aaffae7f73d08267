//! Cutting a test's RabbitMQ connections from the outside, as a broker restart or a network
//! cut would: through `rabbitmqctl`, so this needs no AMQP client.

use super::env_or;

/// `rabbitmqctl` (run as root, or by a user in the `rabbitmq` group).
pub const TEST_RABBITMQCTL: &str = "TEST_RABBITMQCTL";

/// Closes every RabbitMQ connection whose client-provided `connection_name` is `name`, as a
/// broker restart or a network cut would, and returns how many it closed. Only those: a test
/// must not close the connections of other tests running on the same broker
/// (`rabbitmqctl close_all_connections` would).
pub async fn close_rabbit_connections(name: &str) -> usize {
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        let ctl = env_or(TEST_RABBITMQCTL, "rabbitmqctl");
        let output = std::process::Command::new(&ctl)
            .args(["list_connections", "pid", "client_properties", "--quiet", "--no-table-headers"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {ctl}: {e}"));
        assert!(output.status.success(), "{ctl} list_connections failed: {}", String::from_utf8_lossy(&output.stderr));
        // One line per connection: `<rabbit@host.1.2.3>\t[{"connection_name","name"},...]`.
        // (The JSON formatter prints pids in a syntax close_connection does not accept.)
        let wanted = format!("{{\"connection_name\",\"{name}\"}}");
        let pids: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| line.contains(&wanted))
            .filter_map(|line| line.split('\t').next())
            .map(str::to_owned)
            .collect();
        for pid in &pids {
            let status = std::process::Command::new(&ctl)
                .args(["close_connection", pid, "closed by a test"])
                .output()
                .unwrap_or_else(|e| panic!("cannot run {ctl}: {e}"));
            assert!(
                status.status.success(),
                "{ctl} close_connection failed: {}",
                String::from_utf8_lossy(&status.stderr)
            );
        }
        pids.len()
    })
    .await
    .expect("the rabbitmqctl task")
}

/// Deletes a test's exchange and queue (and its dead-letter pair) on the machine's RabbitMQ:
/// what a test whose processes declared them leaves behind otherwise (with feature `amqp`).
#[cfg(feature = "amqp")]
pub async fn delete_topology(exchange: &str, queue: &str) {
    let connection = lapin::Connection::connect(crate::wiring::RABBIT_URL, crate::amqp::connection_properties("test"))
        .await
        .expect("connect to RabbitMQ");
    let channel = connection.create_channel().await.expect("a channel");
    crate::amqp::Topology::new(exchange, queue).delete(&channel).await.expect("delete the test topology");
    let _ = connection.close(0, "done".into()).await;
}
