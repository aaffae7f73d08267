//! Server processes of a test's own (a MongoDB it can kill, a maildev it can stop, a
//! chromedriver), and scratch directories for them.
//!
//! [`ChildServer`] starts the command in a process group of its own, with its output kept in
//! memory, and returns once each of its ports accepts connections. Dropping it kills the
//! whole group (a chromedriver's Chromium with it) and reaps the process; a test that fails
//! while it runs prints its output, which usually says why.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{eventually, unique_name};
use crate::wiring;

/// A directory of a test's own under the system's temporary directory; removed on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `<tmp>/<prefix>-<uuid>`.
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A running server process the test owns; killed (with its process group) and reaped on drop.
pub struct ChildServer {
    /// What it is, for messages.
    what: String,
    child: Child,
    /// Its stdout and stderr so far, as two reader threads collect them.
    output: Arc<Mutex<Vec<u8>>>,
}

impl ChildServer {
    /// Spawns `command` and waits until every one of `ports` on the loopback accepts a
    /// connection, for at most `patience`. Panics, showing the output so far, when the command
    /// cannot start, exits early or misses the deadline.
    pub async fn start(what: &str, mut command: Command, ports: &[u16], patience: Duration) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that dropping it also ends whatever it started.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({:?}): {e}", command.get_program()));
        let output = Arc::new(Mutex::new(Vec::new()));
        let streams: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("a piped stdout")),
            Box::new(child.stderr.take().expect("a piped stderr")),
        ];
        for stream in streams {
            collect(stream, output.clone());
        }
        let mut server = Self { what: what.to_owned(), child, output };
        for &port in ports {
            let address = (wiring::LOCAL_HOST, port);
            eventually(&format!("{what} to listen on port {port}"), patience, || {
                if let Ok(Some(status)) = server.child.try_wait() {
                    panic!(
                        "{what} exited with {status} before listening on port {port}; its output:\n{}",
                        server.output()
                    );
                }
                async move { tokio::net::TcpStream::connect(address).await.ok().map(drop) }
            })
            .await;
        }
        server
    }

    /// Its stdout and stderr so far (lossily decoded), for a failure message.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Kills it (SIGKILL, the whole group) and waits until it is gone: its ports close at once.
    pub fn kill(self) {
        drop(self);
    }

    /// Stops it as a supervisor does (SIGTERM to the process itself) and waits, for at most
    /// `patience`, until it has exited: what it does on the way out (drain requests, flush logs
    /// and spans) is done when this returns. Panics, showing its output, past the deadline.
    pub async fn terminate(mut self, patience: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).stderr(Stdio::null()).status();
        assert!(sent.is_ok_and(|status| status.success()), "cannot send SIGTERM to {} (pid {pid})", self.what);
        let what = format!("{} to exit after SIGTERM", self.what);
        let child = &mut self.child;
        eventually(&what, patience, || std::future::ready(child.try_wait().ok().flatten())).await
        // Dropped here: the rest of its group (if any) is killed.
    }
}

/// Appends everything `stream` yields to `output`, in a thread that ends at end of stream.
fn collect(mut stream: Box<dyn Read + Send>, output: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        while let Ok(read @ 1..) = stream.read(&mut buffer) {
            output.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(&buffer[..read]);
        }
    });
}

/// How long a killed group's other members may take to die (they are not ours to wait for).
const GROUP_DEATH: Duration = Duration::from_secs(5);

/// Whether a process of group `pgid` is still running (not a zombie), from `/proc`.
fn group_running(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.filter_map(Result::ok).any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { return false };
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
        let Some((_, fields)) = stat.rsplit_once(") ") else { return false };
        let mut fields = fields.split(' ');
        let state = fields.next();
        let pgrp = fields.nth(1);
        state != Some("Z") && state != Some("X") && pgrp == Some(pgid.to_string().as_str())
    })
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        // `Child::kill` reaches the leader only; `kill -- -<pgid>` the whole group.
        let pgid = self.child.id();
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The leader is reaped; its group dies asynchronously. Wait for it, so that a test that
        // drops the server finds its ports closed.
        let deadline = std::time::Instant::now() + GROUP_DEATH;
        while group_running(pgid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if std::thread::panicking() {
            eprintln!("output of {} (pid {}):\n{}", self.what, self.child.id(), self.output());
        }
    }
}
