//! A TCP proxy in front of the real MongoDB that the test can cut or hang: it cuts the
//! connection that carries an insert right after MongoDB has answered it (the entry is stored,
//! the logger only sees a broken connection), or holds every connection silent (a hung store).
//! Shaped like authentication's `PgProxy`, with MongoDB's wire in mind.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use service_kit::testing::proxy::is_mongo_command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct MongoProxy {
    pub port: u16,
    state: Arc<State>,
}

struct State {
    upstream: SocketAddr,
    /// Inserts still to cut.
    cuts_left: AtomicUsize,
    /// Connections cut so far.
    cut: AtomicUsize,
    /// While `true`, no connection passes a byte.
    hung: watch::Sender<bool>,
}

impl MongoProxy {
    /// Starts forwarding to `upstream` (`host:port` of the MongoDB URL).
    pub async fn start(upstream: &str) -> Self {
        let upstream = tokio::net::lookup_host(upstream).await.expect("resolve MongoDB").next().expect("an address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            upstream,
            cuts_left: AtomicUsize::new(0),
            cut: AtomicUsize::new(0),
            hung: watch::channel(false).0,
        });
        let serving = state.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(connection(client, serving.clone()));
            }
        });
        Self { port, state }
    }

    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }

    /// Cuts the connections of the next `count` inserts once MongoDB has answered them.
    pub fn cut_next_inserts(&self, count: usize) {
        self.state.cuts_left.store(count, Ordering::SeqCst);
    }

    /// Connections cut so far.
    pub fn cut(&self) -> usize {
        self.state.cut.load(Ordering::SeqCst)
    }

    /// Holds every connection, open and new, silent (`true`), or lets them pass again.
    pub fn hang(&self, hung: bool) {
        self.state.hung.send_replace(hung);
    }
}

/// One client connection, forwarded both ways until it is cut; while hung, nothing passes.
async fn connection(client: TcpStream, state: Arc<State>) {
    let mut hung = state.hung.subscribe();
    if *hung.borrow() {
        let _ = hung.wait_for(|hung| !*hung).await;
        return;
    }
    let Ok(server) = TcpStream::connect(state.upstream).await else { return };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // Set once an insert to cut went to MongoDB: its answer is read and dropped, and so is the connection.
    let cutting = AtomicBool::new(false);
    let up = async {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = from_client.read(&mut buffer).await.unwrap_or(0);
            if read == 0 {
                return;
            }
            let chunk = &buffer[..read];
            let cut = is_mongo_command(chunk, "insert")
                && state.cuts_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            if cut {
                cutting.store(true, Ordering::SeqCst);
            }
            if to_server.write_all(chunk).await.is_err() {
                return;
            }
            if cut {
                std::future::pending::<()>().await;
            }
        }
    };
    let down = async {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = from_server.read(&mut buffer).await.unwrap_or(0);
            if read == 0 {
                return;
            }
            if cutting.load(Ordering::SeqCst) {
                state.cut.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if to_client.write_all(&buffer[..read]).await.is_err() {
                return;
            }
        }
    };
    let hang = tokio::select! {
        () = up => false,
        () = down => false,
        _ = hung.wait_for(|hung| *hung) => true,
    };
    if hang {
        // A hung server keeps its sockets open and silent.
        let _ = hung.wait_for(|hung| !*hung).await;
    }
}
