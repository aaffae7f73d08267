//! The broker beside the Go original's services: against an in-test peer that answers with the
//! original's exact bytes (`contract::go_original`), and publishing events the original's
//! listener can read. The broker's own answers are the same as against ours.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::StatusCode;
use contract::go_original::{self, Response};
use lapin::options::{BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde::Deserialize;
use serde_json::{Value, json};
use service_kit::amqp::Topology;
use service_kit::testing::{self, eventually};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::helpers::{Answer, settings_with_downstreams_down, spawn_broker};

/// A request as the peer received it.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// An HTTP/1.1 server on port 0 that answers every request with one recorded response of the
/// original, byte for byte (plus the `Content-Length` its Go server adds), and keeps what it got.
struct FixturePeer {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl FixturePeer {
    async fn answering(response: Response) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (response, log) = (response.clone(), log.clone());
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    let Some(request) = read_request(&mut stream).await else { return };
                    log.lock().unwrap().push(request);
                    let status = StatusCode::from_u16(response.status).expect("a status");
                    let mut head =
                        format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
                    for (name, value) in &response.headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", response.body.len()));
                    let stream = stream.get_mut();
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(response.body.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { url, received, task }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for FixturePeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request: the request line, the headers (only `Content-Length` is used), the body.
async fn read_request(stream: &mut BufReader<tokio::net::TcpStream>) -> Option<Received> {
    let mut line = String::new();
    stream.read_line(&mut line).await.ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut length = 0;
    loop {
        let mut header = String::new();
        stream.read_line(&mut header).await.ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.ok()?;
    Some(Received { method, path, body })
}

/// The body the peer got, read as the original's `json.Decoder` would into `T`.
fn body_as<T: for<'de> Deserialize<'de>>(received: &Received) -> T {
    serde_json::from_slice(&received.body).expect("a JSON body the original can read")
}

#[derive(Debug, PartialEq, Deserialize)]
struct AuthPayload {
    email: String,
    password: String,
}

/// The broker's `auth` action, with the fixture request's credentials, against a peer that
/// answers with the fixture's response.
async fn auth_action_against(fixture: &go_original::HttpExchange) -> (Answer, FixturePeer, AuthPayload) {
    let peer = FixturePeer::answering(fixture.response.clone()).await;
    let mut settings = settings_with_downstreams_down();
    settings.auth_url = peer.url.clone();
    let app = spawn_broker(settings).await;
    let credentials: AuthPayload = fixture.request.json();
    let answer = app
        .handle(&json!({"action": "auth", "auth": {"email": credentials.email, "password": credentials.password}}))
        .await;
    (answer, peer, credentials)
}

#[tokio::test]
async fn the_auth_action_succeeds_against_the_go_originals_authentication_service() {
    let fixture = go_original::authenticate();
    let (answer, peer, credentials) = auth_action_against(&fixture).await;

    assert_eq!((answer.status, answer.message()), (202, "Authenticated!"), "{}", answer.body);
    let user = &answer.body["data"];
    let original_user = &serde_json::from_str::<Value>(&fixture.response.body).unwrap()["data"];
    for field in ["id", "email", "first_name", "last_name"] {
        assert_eq!(user[field], original_user[field], "{field} passed through");
    }
    assert_eq!(user["active"], json!(true), "the broker's own answer: a bool, as against ours");
    assert_eq!(user["created_at"], json!("2022-03-14T00:00:00Z"));
    let received = peer.received();
    assert_eq!(received.len(), 1);
    assert_eq!((received[0].method.as_str(), received[0].path.as_str()), ("POST", fixture.request.path.as_str()));
    assert_eq!(body_as::<AuthPayload>(&received[0]), credentials, "the original reads the credentials it expects");
}

#[tokio::test]
async fn a_wrong_password_against_the_go_originals_authentication_service_still_gives_401() {
    let fixture = go_original::authenticate_wrong_password();
    assert_eq!(fixture.response.status, 400, "the original answers 400, not 401");
    let (answer, peer, _) = auth_action_against(&fixture).await;

    assert_eq!((answer.status, answer.message()), (401, "invalid credentials"), "{}", answer.body);
    assert_eq!(answer.body["error"], json!(true));
    assert_eq!(peer.received().len(), 1);
}

#[derive(Debug, PartialEq, Deserialize)]
struct MailPayload {
    from: Option<String>,
    to: String,
    subject: String,
    message: String,
}

#[tokio::test]
async fn the_mail_action_succeeds_against_the_go_originals_mailer() {
    let fixture = go_original::send();
    let peer = FixturePeer::answering(fixture.response.clone()).await;
    let mut settings = settings_with_downstreams_down();
    settings.mailer_url = peer.url.clone();
    let app = spawn_broker(settings).await;
    let mail: Value = fixture.request.json();

    let answer = app.handle(&json!({"action": "mail", "mail": mail})).await;

    let to = mail["to"].as_str().unwrap();
    assert_eq!((answer.status, answer.message()), (202, format!("Message sent to {to}").as_str()), "{}", answer.body);
    let received = peer.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, fixture.request.path);
    assert_eq!(body_as::<MailPayload>(&received[0]), serde_json::from_value::<MailPayload>(mail).unwrap());
}

/// The original listener's `Payload`: Go's `json.Unmarshal` fills these and ignores the rest.
#[derive(Debug, PartialEq, Deserialize)]
struct OriginalPayload {
    name: String,
    data: String,
}

#[tokio::test]
async fn events_the_broker_publishes_are_readable_by_the_go_originals_listener() {
    let mut settings = settings_with_downstreams_down();
    settings.rabbit_url = testing::rabbit_url().into();
    let exchange = settings.exchange.clone();
    let topology = Topology::new(&settings.exchange, &settings.queue);
    // The original listener's topology: the exchange as it declares it (topic, durable), and an
    // exclusive server-named queue bound to each of its three keys.
    let connection = Connection::connect(&testing::rabbit_url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel
        .exchange_declare(exchange.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default())
        .await
        .unwrap();
    let exclusive = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
    let queue = channel.queue_declare("".into(), exclusive, FieldTable::default()).await.unwrap();
    for key in ["log.INFO", "log.WARNING", "log.ERROR"] {
        channel
            .queue_bind(
                queue.name().clone(),
                exchange.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    let app = spawn_broker(settings).await;
    let sent = [("INFO", None), ("WARNING", Some("WARNING")), ("ERROR", Some("error"))];

    for (expected, level) in sent {
        let answer =
            app.handle(&json!({"action": "event", "log": {"name": "event", "data": expected, "level": level}})).await;
        assert_eq!((answer.status, answer.message()), (202, "logged via RabbitMQ"), "{}", answer.body);
    }

    for (expected, _) in sent {
        let message = eventually("the event in the original's queue", Duration::from_secs(5), || async {
            channel.basic_get(queue.name().clone(), BasicGetOptions { no_ack: true }).await.unwrap()
        })
        .await;
        let payload: OriginalPayload = serde_json::from_slice(&message.delivery.data).expect("the original's Payload");
        assert_eq!(payload, OriginalPayload { name: "event".into(), data: expected.into() });
        assert_eq!(message.delivery.routing_key.as_str(), format!("log.{expected}"));
    }
    topology.delete(&channel).await.unwrap();
}
