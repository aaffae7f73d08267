//! A TCP proxy of a test's own in front of a real server, which can hold back chosen chunks
//! of what clients send: a store that is slow for some commands only (for example MongoDB
//! writes held while pings and reads pass at once), without touching the shared server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// How long a chunk from a client is held before it is passed on; `Duration::ZERO` passes it
/// at once. Called with every chunk read from a client, in order, per connection.
pub type Hold = Arc<dyn Fn(&[u8]) -> Duration + Send + Sync>;

/// Forwards connections on `127.0.0.1:<port>` to an upstream server until dropped; dropping
/// it closes the port and cuts every connection.
pub struct Proxy {
    pub addr: SocketAddr,
    tasks: JoinSet<()>,
}

impl Proxy {
    /// Starts forwarding to `upstream`, each client chunk held as `hold` says (server answers
    /// pass at once). A held chunk holds what follows it on its connection, as a slow server would.
    pub async fn start(upstream: SocketAddr, hold: impl Fn(&[u8]) -> Duration + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind the proxy port");
        let addr = listener.local_addr().expect("a local address");
        let mut tasks = JoinSet::new();
        tasks.spawn(serve(listener, upstream, Arc::new(hold)));
        Self { addr, tasks }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// Whether a chunk starts a MongoDB `OP_MSG` whose command is `command` (`insert`, `find`,
/// `ping`...): the command name is the first key of the body document, so it sits within the
/// first bytes after the 16-byte header, the flags and the section kind.
pub fn is_mongo_command(chunk: &[u8], command: &str) -> bool {
    const HEADER: usize = 16;
    const SEARCHED: usize = 64;
    let Some(body) = chunk.get(HEADER..) else { return false };
    // A BSON element: its type (any), the key as a C string.
    let key: Vec<u8> = [command.as_bytes(), b"\0"].concat();
    body[..body.len().min(SEARCHED)].windows(key.len()).any(|window| window == key.as_slice())
}

async fn serve(listener: TcpListener, upstream: SocketAddr, hold: Hold) {
    // The connections live in this task's set: aborting the task drops and closes them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((client, _)) = accepted {
                    connections.spawn(connection(client, upstream, hold.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn connection(client: TcpStream, upstream: SocketAddr, hold: Hold) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let (mut client_reads, mut client_writes) = client.into_split();
    let (mut server_reads, mut server_writes) = server.into_split();
    let requests = async {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = match client_reads.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            let chunk = &buffer[..read];
            let held = hold(chunk);
            if !held.is_zero() {
                tokio::time::sleep(held).await;
            }
            if server_writes.write_all(chunk).await.is_err() {
                break;
            }
        }
        let _ = server_writes.shutdown().await;
    };
    let answers = async {
        let _ = tokio::io::copy(&mut server_reads, &mut client_writes).await;
        let _ = client_writes.shutdown().await;
    };
    tokio::join!(requests, answers);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mongo_command_is_found_by_its_first_key_only() {
        let message = |command: &str| {
            let mut bytes = vec![0u8; 16 + 4 + 1 + 4];
            bytes.push(0x02);
            bytes.extend_from_slice(command.as_bytes());
            bytes.extend_from_slice(b"\0....\0lsid");
            bytes
        };
        assert!(is_mongo_command(&message("insert"), "insert"));
        assert!(!is_mongo_command(&message("find"), "insert"));
        assert!(!is_mongo_command(b"insert\0", "insert"), "inside the header: not a command");
        let mut late = vec![0u8; 16 + 100];
        late.extend_from_slice(b"insert\0");
        assert!(!is_mongo_command(&late, "insert"), "a value far into the message: not the command");
    }
}
