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
    assert!(slowest_while_open < Duration::from_millis(250), "an open-circuit answer took {slowest_while_open:?}");
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
