//! A TCP proxy in front of the real Postgres that the test can take down and bring back,
//! so a test can see the service lose its database without stopping the shared server.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards connections to Postgres.
    Up,
    /// Drops every connection and closes the port: connecting is refused.
    Down,
    /// Accepts connections and holds the open ones, but never passes a byte: a hung server.
    Hung,
}

pub struct PgProxy {
    /// The proxy's port on 127.0.0.1.
    pub port: u16,
    mode: watch::Sender<Mode>,
}

impl PgProxy {
    /// Starts forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = listen(0).await;
        let port = listener.local_addr().expect("a local address").port();
        let (mode, changes) = watch::channel(Mode::Up);
        tokio::spawn(serve(listener, port, upstream, changes));
        Self { port, mode }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.mode.send_replace(Mode::Down);
    }
}

async fn listen(port: u16) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("a socket");
    // The port is bound again after being closed: allow it despite TIME_WAIT connections.
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port))).expect("bind the proxy port");
    socket.listen(64).expect("listen")
}

async fn serve(first: TcpListener, port: u16, upstream: SocketAddr, mut changes: watch::Receiver<Mode>) {
    let mut listener = Some(first);
    loop {
        let mode = *changes.borrow_and_update();
        match mode {
            Mode::Down => listener = None,
            Mode::Up | Mode::Hung => {
                if listener.is_none() {
                    listener = Some(listen(port).await);
                }
            }
        }
        loop {
            let accepted = match &listener {
                Some(listener) => tokio::select! {
                    accepted = listener.accept() => accepted,
                    changed = changes.changed() => {
                        if changed.is_err() { return; }
                        break;
                    }
                },
                None => {
                    if changes.changed().await.is_err() {
                        return;
                    }
                    break;
                }
            };
            let Ok((client, _)) = accepted else { continue };
            tokio::spawn(connection(client, upstream, mode, changes.clone()));
        }
    }
}

/// One client connection: forwarded while the mode stays `Up`, held silent while `Hung`,
/// dropped as soon as the mode changes.
async fn connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    accepted_in: Mode,
    mut changes: watch::Receiver<Mode>,
) {
    if accepted_in == Mode::Hung {
        let _ = changes.wait_for(|mode| *mode != Mode::Hung).await;
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    let stopped = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
        changed = changes.wait_for(|mode| *mode != Mode::Up) => changed.is_ok(),
    };
    if stopped {
        // A hung server keeps its sockets open and silent; a stopped one drops them.
        let _ = changes.wait_for(|mode| *mode != Mode::Hung).await;
    }
}
