use std::net::TcpStream;
use std::time::{Duration, Instant};

use logger::testing::{STOP_BOUND, TestLogger};
use service_kit::logger_client::{LoggerRpc, RpcError};

use crate::helpers::{entry, spawn_app};

#[tokio::test]
async fn the_shared_client_reconnects_after_the_logger_restarts_on_the_same_port() {
    let app = spawn_app().await;
    let (port, rpc_port) = (app.logger.port, app.logger.rpc_port);
    let rpc = app.rpc.clone();
    let first = rpc.write_log(entry("before the restart", "")).await.unwrap();

    let mongo = app.stop().await;

    // Both servers are gone, and the client says so at once instead of hanging.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "HTTP still listens");
    assert!(TcpStream::connect(("127.0.0.1", rpc_port)).is_err(), "RPC still listens");
    let error = rpc.write_log(entry("while down", "")).await.unwrap_err();
    assert!(matches!(error, RpcError::Unreachable(_)), "{error:?}");

    // A new logger on the same RPC port and database.
    let again = TestLogger::spawn_with(mongo, |settings| settings.rpc_port = rpc_port).await;

    let second = rpc.write_log(entry("after the restart", "")).await.expect("the same client reconnects by itself");
    assert_ne!(first, second);
    let names: Vec<String> = rpc.recent(10, None, None).await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["after the restart", "before the restart"]);

    again.stop().await;
}

#[tokio::test]
async fn a_stop_returns_within_a_bound_with_or_without_idle_clients_connected() {
    // Without a connection the RPC server ends at once, before the HTTP server: the order in
    // which a stop once waited forever. With idle connections (held open by the clones until
    // after the stop) both servers have something to close.
    for idle_clients in [false, true] {
        let app = spawn_app().await;
        let (rpc, http) = (app.rpc.clone(), app.http.clone());
        if idle_clients {
            rpc.ping().await.expect("the RPC connection is up");
            assert_eq!(app.get("/health").await.status, 200);
        }

        let started = Instant::now();
        app.stop().await;

        let took = started.elapsed();
        assert!(took < STOP_BOUND, "idle clients: {idle_clients}: the stop took {took:?}");
        drop((rpc, http));
    }
}

#[tokio::test]
async fn clones_of_the_client_share_one_connection() {
    let app = spawn_app().await;
    let clones: Vec<LoggerRpc> = (0..10).map(|_| app.rpc.clone()).collect();

    for rpc in &clones {
        rpc.ping().await.unwrap();
    }

    // One RPC connection from this process to the logger's port, whatever the number of clones.
    let connections = established_connections_to(app.logger.rpc_port);
    assert_eq!(connections, 1, "one shared connection");
}

#[tokio::test]
async fn a_call_that_cannot_be_answered_in_time_fails_with_a_timeout() {
    let app = spawn_app().await;
    let impatient = LoggerRpc::new(app.logger.rpc_addr.clone(), Duration::from_nanos(1));
    let error = impatient.ping().await.unwrap_err();
    assert!(matches!(error, RpcError::Timeout(_)), "{error:?}");
    // Another client with a sensible bound is unaffected.
    app.rpc.ping().await.unwrap();
}

/// Established TCP connections whose remote port is `port` (client side), from /proc.
fn established_connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    let remote = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() > 3).then(|| (fields[2].to_owned(), fields[3].to_owned()))
        })
        .filter(|(rem, state)| rem.ends_with(&remote) && state == "01")
        .count()
}
