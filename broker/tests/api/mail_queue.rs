//! Mail while the mailer is stopped: queued on RabbitMQ (202 "Message queued for <to>"), fast
//! once the mailer's circuit is open, and every one sent, once, when a mailer starts again.

use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::json;
use service_kit::amqp::Topology;
use service_kit::testing::{self, MailCatcher, eventually};
use service_kit::{Env, HttpSettings};

use crate::helpers::{settings_with_downstreams_down, spawn_broker};
use crate::stack::delete_topology;

/// Messages ready in `queue`.
async fn ready(queue: &str) -> u32 {
    let connection =
        lapin::Connection::connect(&testing::rabbit_url(), lapin::ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let count = channel.queue_declare(queue.into(), passive, FieldTable::default()).await.unwrap().message_count();
    let _ = connection.close(0, "done".into()).await;
    count
}

#[tokio::test]
async fn mails_sent_while_the_mailer_is_stopped_are_queued_and_all_arrive_once_it_starts_again() {
    // The mailer's address is a closed port: a stopped mailer. RabbitMQ is the real one.
    let mut settings = settings_with_downstreams_down();
    settings.rabbit_url = testing::rabbit_url().into();
    settings.breaker = broker::breaker::BreakerSettings {
        failures: 3,
        open_for: Duration::from_secs(60),
        ..broker::breaker::BreakerSettings::default()
    };
    let topology = Topology::mail(&settings.mail_exchange, &settings.mail_queue);
    let app = spawn_broker(settings).await;
    let to = MailCatcher::unique_address();

    let mut slowest_while_open = Duration::ZERO;
    let total = Instant::now();
    for i in 0..100 {
        let mail = json!({"action": "mail", "mail": {"to": to, "subject": format!("queued {i:03}"), "message": "m"}});
        let started = Instant::now();
        let answer = app.handle(&mail).await;
        let took = started.elapsed();
        assert_eq!((answer.status, answer.message()), (202, format!("Message queued for {to}").as_str()), "mail {i}");
        assert_eq!(answer.body["error"], json!(false));
        if i >= 3 {
            slowest_while_open = slowest_while_open.max(took);
        }
    }
    let total = total.elapsed();
    let mailer_entry = app.get("/ready").await.body["data"]["mailer"].as_str().unwrap_or_default().to_owned();
    assert!(mailer_entry.contains("circuit open"), "{mailer_entry}");
    eprintln!("100 mails queued in {total:?}; slowest answer while the circuit was open: {slowest_while_open:?}");
    // Well below the mailer's timeout (2 s here) and any connect timeout: no hop to the mailer.
    assert!(slowest_while_open < Duration::from_millis(500), "an open-circuit answer took {slowest_while_open:?}");
    assert_eq!(ready(&topology.queue).await, 100, "every mail waits on RabbitMQ");

    // The mailer starts: it drains the queue into the catcher.
    let smtp_port = testing::smtp_port().to_string();
    let mut mailer_settings = mailer::Settings::from_env(&Env::from_pairs([
        ("MAIL_HOST", testing::smtp_host().as_str()),
        ("MAIL_PORT", smtp_port.as_str()),
    ]))
    .unwrap();
    mailer_settings.http = HttpSettings::ephemeral();
    mailer_settings.queue.rabbit_url = testing::rabbit_url().into();
    mailer_settings.queue.exchange = topology.exchange.clone();
    mailer_settings.queue.queue = topology.queue.clone();
    let mailer = mailer::Application::build(mailer_settings).await.unwrap();
    let stop = mailer.stop_handle();
    let running = tokio::spawn(mailer.run_until_stopped());
    let started = Instant::now();
    let catcher = MailCatcher::new();
    eventually("the 100 queued mails in the catcher", Duration::from_secs(60), || async {
        (catcher.mails_to(&to).await.len() >= 100).then_some(())
    })
    .await;
    eprintln!("the restarted mailer delivered the 100 queued mails in {:?}", started.elapsed());
    eventually("the queue drained", Duration::from_secs(10), || async {
        (ready(&topology.queue).await == 0).then_some(())
    })
    .await;
    stop.stop().await;
    running.await.unwrap().unwrap();
    let mut subjects: Vec<String> = catcher.mails_to(&to).await.into_iter().map(|m| m.subject).collect();
    subjects.sort();
    let expected: Vec<String> = (0..100).map(|i| format!("queued {i:03}")).collect();
    assert_eq!(subjects, expected, "exactly the 100 mails, each once");
    assert_eq!(ready(&topology.dead_letter_queue).await, 0, "none dead-lettered");
    delete_topology(&topology).await;
}

/// An HTTP server that answers every request with `status` and an envelope naming `message`:
/// a mailer that is up and answers as told.
async fn mailer_answering(status: u16, message: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Read the head and the body it announces, then answer and close.
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = stream.read(&mut chunk).await?;
                    if n == 0 {
                        return Ok(());
                    }
                    request.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|line| line.strip_prefix("content-length:"))
                            .and_then(|value| value.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let body = json!({"error": true, "message": message}).to_string();
                let head = format!(
                    "HTTP/1.1 {status} Told\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(body.as_bytes()).await?;
                stream.shutdown().await
            });
        }
    });
    address
}

#[tokio::test]
async fn only_a_mailer_that_cannot_take_the_mail_gets_it_queued_a_refusal_or_a_failure_is_answered() {
    let cases = [
        (
            503,
            "the mailer is overloaded",
            202,
            "Message queued for ",
            1,
            "a 503: the mailer is up but cannot take it now",
        ),
        (400, "`to`: no such domain", 400, "`to`: no such domain", 0, "a 4xx is the caller's error"),
        (500, "template bug", 502, "mailer failed", 0, "a 500 may have sent nothing, but is no outage"),
    ];
    for (mailer_status, mailer_message, status, message, queued, why) in cases {
        let mut settings = settings_with_downstreams_down();
        settings.rabbit_url = testing::rabbit_url().into();
        settings.mailer_url = mailer_answering(mailer_status, mailer_message).await;
        let topology = Topology::mail(&settings.mail_exchange, &settings.mail_queue);
        let connection =
            lapin::Connection::connect(&testing::rabbit_url(), lapin::ConnectionProperties::default()).await.unwrap();
        topology.declare(&connection.create_channel().await.unwrap()).await.unwrap();
        let app = spawn_broker(settings).await;
        let to = MailCatcher::unique_address();
        let answer = app.handle(&json!({"action": "mail", "mail": {"to": to, "subject": "s", "message": "m"}})).await;
        assert_eq!(answer.status, status, "{why}: {}", answer.body);
        assert!(answer.message().contains(message), "{why}: {}", answer.body);
        assert_eq!(ready(&topology.queue).await, queued, "{why}");
        delete_topology(&topology).await;
        let _ = connection.close(0, "done".into()).await;
    }
}
