//! `ChildServer`, the fixture for a server process of a test's own, against real processes.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use service_kit::testing::{ChildServer, ScratchDir, free_port};

const PATIENCE: Duration = Duration::from_secs(10);

/// `sh -c script`: the shell leads the group, the server runs as its child.
fn shell(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    command
}

#[tokio::test]
async fn a_child_server_answers_on_its_port_keeps_its_output_and_dies_with_its_group_on_drop() {
    let port = free_port();
    let script = format!("echo starting >&2; python3 -u -m http.server --bind 127.0.0.1 {port} & echo server=$!; wait");
    let server = ChildServer::start("a Python HTTP server", shell(&script), &[port], PATIENCE).await;

    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok(), "it listens once started");
    assert!(server.output().contains("starting"), "stderr is kept: {:?}", server.output());
    let output = server.output();
    let pid = output.split("server=").nth(1).and_then(|rest| rest.split_whitespace().next()).expect("its pid");

    // The shell is the process the fixture spawned; the server is its child, in its group.
    // (Asserted on the process, not the port: on a busy machine another test may bind it next.)
    server.kill();
    assert!(!alive(pid), "the server, the shell's child, is gone with its group");
}

/// Whether `pid` runs (a zombie has exited: its sockets are closed).
fn alive(pid: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = stat.rsplit_once(") ").and_then(|(_, fields)| fields.split(' ').next());
    !matches!(state, Some("Z" | "X"))
}

#[tokio::test]
#[should_panic(expected = "exited with exit status: 3 before listening")]
async fn a_child_server_that_exits_before_listening_fails_the_test_at_once() {
    ChildServer::start("a server that gives up", shell("echo cannot bind >&2; exit 3"), &[free_port()], PATIENCE).await;
}

#[tokio::test]
#[should_panic(expected = "timed out after 200ms waiting for a silent process to listen")]
async fn a_child_server_that_never_listens_fails_the_test_at_its_deadline() {
    let patience = Duration::from_millis(200);
    ChildServer::start("a silent process", shell("exec sleep 30"), &[free_port()], patience).await;
}

/// A Python HTTP server on `port` that, on SIGTERM, runs `on_term` (a Python statement).
fn python_server(port: u16, on_term: &str) -> Command {
    let script = format!(
        "import http.server, signal, sys\n\
         signal.signal(signal.SIGTERM, {on_term})\n\
         http.server.HTTPServer(('127.0.0.1', {port}), http.server.BaseHTTPRequestHandler).serve_forever()"
    );
    let mut command = Command::new("python3");
    command.args(["-u", "-c", &script]);
    command
}

#[tokio::test]
async fn terminate_sends_sigterm_and_returns_once_the_process_has_done_its_shutdown_work() {
    let port = free_port();
    let scratch = ScratchDir::new("terminate");
    let mark = scratch.path().join("flushed");
    let on_term = format!("lambda *_: (open({:?}, 'w').write('flushed'), sys.exit(0))", mark.display().to_string());
    let server =
        ChildServer::start("a Python server that flushes on SIGTERM", python_server(port, &on_term), &[port], PATIENCE)
            .await;

    let status = server.terminate(PATIENCE).await;

    assert!(status.success(), "it exited by itself, not killed: {status}");
    assert_eq!(std::fs::read_to_string(&mark).ok().as_deref(), Some("flushed"), "its shutdown work is done");
}

#[tokio::test]
#[should_panic(expected = "waiting for a server deaf to SIGTERM to exit after SIGTERM")]
async fn terminate_fails_the_test_when_the_process_outlives_its_patience() {
    let port = free_port();
    let server =
        ChildServer::start("a server deaf to SIGTERM", python_server(port, "signal.SIG_IGN"), &[port], PATIENCE).await;
    server.terminate(Duration::from_millis(300)).await;
}
