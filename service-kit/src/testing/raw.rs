//! Requests written by hand over a plain TCP connection, for what an HTTP client will not send:
//! a body that stops short of its `Content-Length`, a body that trickles in, a header section
//! that never ends. The answer is read until the server closes the connection, so a test that
//! gets one knows the connection did not stay open.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Time a server has, past its bound, to answer and close the connection (actix lingers up to
/// `server::CLIENT_DISCONNECT_TIMEOUT` for the client to hang up first).
pub const MARGIN: Duration = Duration::from_secs(2);

/// What the server wrote before it closed the connection, and when.
#[derive(Debug)]
pub struct RawAnswer {
    /// 0 when the server closed without answering.
    pub status: u16,
    /// The body as JSON; `Null` when there is none or it is not JSON.
    pub body: serde_json::Value,
    /// From the last byte sent to the first byte of the answer (to the close if none came).
    pub answered: Duration,
    /// From the last byte sent to the connection's close.
    pub closed: Duration,
}

/// Sends `head` (request line and headers, with the blank line that ends them unless the test
/// means the header section to stall) and then
/// `pieces` of body, `gap` apart, to `base_url` (`http://host:port`); then reads until the server
/// closes. Panics if the connection is still open `within` after the last byte was sent.
pub async fn send_raw(base_url: &str, head: &str, pieces: &[&[u8]], gap: Duration, within: Duration) -> RawAnswer {
    let address = base_url.strip_prefix("http://").unwrap_or(base_url).trim_end_matches('/');
    let mut stream = TcpStream::connect(address).await.expect("connect to the server");
    stream.write_all(head.as_bytes()).await.expect("send the request head");
    for (index, piece) in pieces.iter().enumerate() {
        if index > 0 {
            // Pacing the client, not waiting for the server: this is the slow body itself.
            tokio::time::sleep(gap).await;
        }
        stream.write_all(piece).await.expect("send a piece of the body");
    }
    let sent = Instant::now();
    let read = async {
        let mut answer = vec![0; 64 * 1024];
        let first = stream.read(&mut answer).await.expect("read the answer");
        let answered = sent.elapsed();
        answer.truncate(first);
        if first > 0 {
            stream.read_to_end(&mut answer).await.expect("read the answer");
        }
        (answer, answered)
    };
    let (answer, answered) = tokio::time::timeout(within, read)
        .await
        .unwrap_or_else(|_| panic!("the connection is still open {within:?} after the request stalled"));
    let closed = sent.elapsed();
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    RawAnswer { status, body: serde_json::from_str(body).unwrap_or_default(), answered, closed }
}

/// A JSON `POST` to `path` that promises 100 bytes of body and sends 10: the answer, read until
/// the server closes, or a panic if it has not closed `within`.
pub async fn short_body(base_url: &str, path: &str, within: Duration) -> RawAnswer {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );
    send_raw(base_url, &head, &[b"{\"action\":"], Duration::ZERO, within).await
}

/// What every service does with a body short of its `Content-Length` when its
/// `BODY_TIMEOUT_MS` is `bound`: a 408 in the envelope, not before the bound (it is the body's
/// deadline that answers, not another timer) nor long after it, and the connection closed
/// within the bound and [`MARGIN`]. Returns the answer for its figures.
pub async fn assert_short_body_refused(base_url: &str, path: &str, bound: Duration) -> RawAnswer {
    let answer = short_body(base_url, path, bound + MARGIN).await;
    let message = format!("request body did not arrive within {} ms", bound.as_millis());
    assert_eq!((answer.status, &answer.body), (408, &serde_json::json!({"error": true, "message": message})));
    assert!(answer.answered >= bound.mul_f32(0.9), "{path} answered after {:?}, before the bound", answer.answered);
    assert!(answer.answered <= bound * 2, "{path} answered after {:?}, over twice the bound", answer.answered);
    eprintln!("{path}: 408 after {:?}, closed after {:?} (bound {bound:?})", answer.answered, answer.closed);
    answer
}

/// The same request to a route that reads no body (a service with no body-reading route, the
/// listener's and the frontend's): answered at once, well before `bound`, and the connection
/// closed, since the rest of the body would be read as the next request. Returns the answer.
pub async fn assert_unread_short_body_answered_at_once(base_url: &str, path: &str, bound: Duration) -> RawAnswer {
    let answer = short_body(base_url, path, bound + MARGIN).await;
    assert_ne!(answer.status, 0, "{path}: closed without an answer");
    assert!(answer.answered < bound / 2, "{path} answered after {:?}, waiting for the body", answer.answered);
    eprintln!(
        "{path}: {} after {:?}, closed after {:?} (bound {bound:?})",
        answer.status, answer.answered, answer.closed
    );
    answer
}
