//! The one TCP proxy for tests, in front of a real server, so a test can make that server slow,
//! broken, hung or gone for its own connections without touching the shared server:
//! - per chunk a client sends, a [`Chunk`] decision: pass it, hold it (a store slow for some
//!   commands only, e.g. MongoDB writes held while pings and reads pass at once), or pass it
//!   and cut the connection once the server has answered (the write is done, the client only
//!   sees a broken connection);
//! - for the whole proxy, a [`Mode`]: forward, down (connections refused), or hung (open
//!   sockets that never pass a byte).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What becomes of one chunk a client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Passed on at once.
    Pass,
    /// Passed on after this long; it holds what follows it on its connection, as a slow server would.
    Hold(Duration),
    /// Passed on; the server's answer is dropped, and so is the connection ([`Proxy::cut`] counts them).
    CutAfterAnswer,
}

/// Decides each chunk read from a client, in order, per connection.
pub type Decide = Arc<dyn Fn(&[u8]) -> Chunk + Send + Sync>;

/// The whole proxy's state, set with [`Proxy::set`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards connections, each chunk as decided.
    Up,
    /// Drops every connection and closes the port: connecting is refused.
    Down,
    /// Accepts connections and holds the open ones, but never passes a byte: a hung server.
    /// Back to `Up`, the held connections are dropped.
    Hung,
}

/// Forwards connections on `127.0.0.1:<port>` to an upstream server until dropped; dropping
/// it closes the port and cuts every connection.
pub struct Proxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    cut: Arc<AtomicUsize>,
    tasks: JoinSet<()>,
}

impl Proxy {
    /// Starts forwarding to `upstream`, each client chunk as `decide` says (server answers pass
    /// at once).
    pub async fn start(upstream: SocketAddr, decide: impl Fn(&[u8]) -> Chunk + Send + Sync + 'static) -> Self {
        let listener = listen(0);
        let addr = listener.local_addr().expect("a local address");
        let (mode, changes) = watch::channel(Mode::Up);
        let cut = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        tasks.spawn(serve(listener, upstream, Arc::new(decide), changes, cut.clone()));
        Self { addr, mode, cut, tasks }
    }

    /// Starts forwarding every chunk to `upstream` at once.
    pub async fn forward(upstream: SocketAddr) -> Self {
        Self::start(upstream, |_| Chunk::Pass).await
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Connections cut after an answer so far.
    pub fn cut(&self) -> usize {
        self.cut.load(Ordering::SeqCst)
    }

    /// A MongoDB URL to the server through the proxy (one server, no discovery of the others).
    pub fn mongo_url(&self) -> String {
        format!("mongodb://{}/?directConnection=true", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// The address of the first host of a `scheme://[user@]host:port/...` URL, e.g. the test
/// MongoDB server's, to put a proxy in front of it.
pub fn url_addr(url: &str) -> SocketAddr {
    let hosts = url.split_once("://").map_or(url, |(_, rest)| rest);
    let hosts = hosts.rsplit_once('@').map_or(hosts, |(_, hosts)| hosts);
    let host = hosts.split(['/', '?', ',']).next().expect("a host in the URL");
    host.to_socket_addrs().expect("a resolvable host:port").next().expect("one address")
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

fn listen(port: u16) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("a socket");
    // `Down` then `Up` binds the port again: allow it despite TIME_WAIT connections.
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port))).expect("bind the proxy port");
    socket.listen(64).expect("listen")
}

async fn serve(
    first: TcpListener,
    upstream: SocketAddr,
    decide: Decide,
    mut changes: watch::Receiver<Mode>,
    cut: Arc<AtomicUsize>,
) {
    let port = first.local_addr().expect("a local address").port();
    let mut listener = Some(first);
    // The connections live in this task's set: aborting the task drops and closes them all.
    let mut connections = JoinSet::new();
    loop {
        let current = *changes.borrow_and_update();
        match current {
            Mode::Down => listener = None,
            Mode::Up | Mode::Hung => {
                if listener.is_none() {
                    listener = Some(listen(port));
                }
            }
        }
        let accepted = async {
            match &listener {
                Some(listener) => listener.accept().await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = accepted => {
                if let Some((client, _)) = accepted {
                    connections.spawn(connection(client, upstream, decide.clone(), changes.clone(), cut.clone()));
                }
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One client connection: forwarded while the mode stays `Up`, held silent while `Hung`,
/// dropped as soon as the mode changes otherwise.
async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    decide: Decide,
    mut mode: watch::Receiver<Mode>,
    cut: Arc<AtomicUsize>,
) {
    let accepted_in = *mode.borrow_and_update();
    match accepted_in {
        Mode::Up => {}
        Mode::Down => return,
        Mode::Hung => {
            let _ = mode.wait_for(|mode| *mode != Mode::Hung).await;
            return;
        }
    }
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let (mut client_reads, mut client_writes) = client.into_split();
    let (mut server_reads, mut server_writes) = server.into_split();
    // Set once a chunk to cut after went to the server: its answer is read and dropped.
    let cutting = AtomicBool::new(false);
    let requests = async {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = match client_reads.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            let chunk = &buffer[..read];
            let decision = decide(chunk);
            match decision {
                Chunk::Pass => {}
                Chunk::Hold(held) => tokio::time::sleep(held).await,
                Chunk::CutAfterAnswer => cutting.store(true, Ordering::SeqCst),
            }
            if server_writes.write_all(chunk).await.is_err() {
                break;
            }
            if decision == Chunk::CutAfterAnswer {
                // Nothing more goes up; the connection ends with the answer.
                return;
            }
        }
        let _ = server_writes.shutdown().await;
    };
    let answers = async {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = match server_reads.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            if cutting.load(Ordering::SeqCst) {
                cut.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if client_writes.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
        let _ = client_writes.shutdown().await;
    };
    let forwarding = async {
        tokio::join!(requests, answers);
    };
    let stopped = tokio::select! {
        () = forwarding => false,
        changed = mode.wait_for(|mode| *mode != Mode::Up) => changed.is_ok(),
    };
    if stopped {
        // A hung server keeps its sockets open and silent; a stopped one drops them.
        let _ = mode.wait_for(|mode| *mode != Mode::Hung).await;
    }
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

    /// An echo server on port 0: what the proxy forwards to in these tests.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut reads, mut writes) = stream.split();
                    let _ = tokio::io::copy(&mut reads, &mut writes).await;
                });
            }
        });
        addr
    }

    /// Sends `message` and reads what comes back within a second: the bytes, or `None` once
    /// the connection is closed first, or `Some(empty)` for silence.
    async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Option<Vec<u8>> {
        stream.write_all(message).await.ok()?;
        let mut answer = vec![0; message.len()];
        match tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut answer)).await {
            Ok(Ok(_)) => Some(answer),
            Ok(Err(_)) => None,
            Err(_) => Some(Vec::new()),
        }
    }

    #[tokio::test]
    async fn chunks_pass_are_held_or_cut_after_their_answer_as_decided() {
        let proxy = Proxy::start(echo_server().await, |chunk| match chunk {
            b"slow" => Chunk::Hold(Duration::from_millis(300)),
            b"last" => Chunk::CutAfterAnswer,
            _ => Chunk::Pass,
        })
        .await;
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"fast").await.as_deref(), Some(&b"fast"[..]));
        let started = std::time::Instant::now();
        assert_eq!(round_trip(&mut stream, b"slow").await.as_deref(), Some(&b"slow"[..]));
        assert!(started.elapsed() >= Duration::from_millis(300), "held: {:?}", started.elapsed());
        assert_eq!(round_trip(&mut stream, b"last").await, None, "the answer is dropped with the connection");
        assert_eq!(proxy.cut(), 1);
        let mut again = TcpStream::connect(proxy.addr).await.unwrap();
        assert_eq!(round_trip(&mut again, b"next").await.as_deref(), Some(&b"next"[..]), "new connections pass");
    }

    #[tokio::test]
    async fn a_proxy_down_refuses_connections_and_a_hung_one_holds_them_silent() {
        let proxy = Proxy::forward(echo_server().await).await;
        let mut open = TcpStream::connect(proxy.addr).await.unwrap();
        assert_eq!(round_trip(&mut open, b"ping").await.as_deref(), Some(&b"ping"[..]));

        proxy.set(Mode::Hung);
        assert_eq!(round_trip(&mut open, b"ping").await.as_deref(), Some(&[][..]), "an open connection is silent");
        let mut new = TcpStream::connect(proxy.addr).await.expect("a hung server still accepts");
        assert_eq!(round_trip(&mut new, b"ping").await.as_deref(), Some(&[][..]), "a new connection is silent");

        proxy.set(Mode::Down);
        assert_eq!(round_trip(&mut open, b"ping").await, None, "connections are dropped");
        eventually_refused(proxy.addr).await;

        proxy.set(Mode::Up);
        let mut back = connect_within_a_second(proxy.addr).await;
        assert_eq!(round_trip(&mut back, b"ping").await.as_deref(), Some(&b"ping"[..]), "the same port again");
    }

    async fn eventually_refused(addr: SocketAddr) {
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("{addr} still accepts connections");
    }

    async fn connect_within_a_second(addr: SocketAddr) -> TcpStream {
        let started = std::time::Instant::now();
        loop {
            match TcpStream::connect(addr).await {
                Ok(stream) => return stream,
                Err(error) if started.elapsed() > Duration::from_secs(1) => panic!("{addr}: {error}"),
                Err(_) => tokio::task::yield_now().await,
            }
        }
    }
}
