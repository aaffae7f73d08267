//! The mail jobs the broker queues while the mailer is down: each test has its own exchange and
//! queue on the shared RabbitMQ, its own recipients at the catcher, and deletes its topology.

use std::time::Duration;

use contract::mail::MailJob;
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use mailer::Application;
use mailer::StopHandle;
use mailer::settings::Settings;
use serde_json::json;
use service_kit::amqp::{EventPublisher, Topology};
use service_kit::testing::proxy::{Mode, Proxy};
use service_kit::testing::{self, MailCatcher, eventually};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::helpers::{test_settings, test_settings_for_smtp_port};

const PATIENCE: Duration = Duration::from_secs(30);

/// A running mailer, a publisher on its topology and a channel to look into the queues.
struct Fixture {
    topology: Topology,
    publisher: EventPublisher,
    channel: Channel,
    _connection: Connection,
    stop: StopHandle,
    /// The running mailer; `None` once stopped.
    stopped: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    address: String,
}

impl Fixture {
    async fn start(mut settings: Settings) -> Self {
        service_kit::telemetry::init_for_tests();
        // Retries quick enough for a test to see an outage end.
        settings.queue.retry_min = Duration::from_millis(20);
        settings.queue.retry_max = Duration::from_millis(300);
        let topology = settings.queue.topology();
        let application = Application::build(settings).await.expect("the mailer builds");
        let address = format!("http://127.0.0.1:{}", application.port());
        let stop = application.stop_handle();
        let stopped = Some(tokio::spawn(application.run_until_stopped()));
        let publisher =
            EventPublisher::with_topology(&testing::rabbit_url(), topology.clone(), Duration::from_secs(5)).unwrap();
        let connection = Connection::connect(&testing::rabbit_url(), ConnectionProperties::default())
            .await
            .expect("RabbitMQ (run `project/infra.sh up`)");
        let channel = connection.create_channel().await.unwrap();
        Self { topology, publisher, channel, _connection: connection, stop, stopped, address }
    }

    async fn publish(&self, job: &MailJob) {
        self.publisher.publish_mail(job).await.expect("RabbitMQ confirms the job");
    }

    /// Messages ready in `queue` (not those a consumer holds unacked).
    async fn ready(&self, queue: &str) -> u32 {
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        self.channel.queue_declare(queue.into(), passive, FieldTable::default()).await.unwrap().message_count()
    }

    async fn ready_answer(&self) -> (u16, serde_json::Value) {
        let response = reqwest::get(format!("{}/ready", self.address)).await.expect("GET /ready");
        (response.status().as_u16(), response.json().await.expect("JSON"))
    }

    /// Stops the mailer: jobs it held unacked go back to the queue.
    async fn stop(&mut self) {
        if let Some(running) = self.stopped.take() {
            self.stop.stop().await;
            running.await.unwrap().unwrap();
        }
    }

    /// Stops the mailer and deletes the topology.
    async fn finish(mut self) {
        self.stop().await;
        self.topology.delete(&self.channel).await.unwrap();
    }
}

fn job(to: &str, subject: &str) -> MailJob {
    MailJob::new(
        serde_json::from_value(json!({"to": to, "subject": subject, "message": "queued while the mailer was down"}))
            .unwrap(),
    )
}

fn subjects(mails: &[testing::CaughtMail]) -> Vec<String> {
    let mut subjects: Vec<String> = mails.iter().map(|m| m.subject.clone()).collect();
    subjects.sort();
    subjects
}

#[tokio::test]
async fn a_queued_job_is_sent_once_and_acked_and_the_consumer_shows_in_ready() {
    let mut fixture = Fixture::start(test_settings()).await;
    let to = MailCatcher::unique_address();
    fixture.publish(&job(&to, "queued")).await;

    let catcher = MailCatcher::new();
    let mail = catcher.wait_for_mail_to(&to, PATIENCE).await;
    assert_eq!(mail.subject, "queued");
    let (status, body) = fixture.ready_answer().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["rabbitmq"], json!("ok"), "{body}");

    fixture.stop().await;
    // Acked: nothing came back to the queue when the consumer closed.
    let counts =
        (fixture.ready(&fixture.topology.queue).await, fixture.ready(&fixture.topology.dead_letter_queue).await);
    assert_eq!(counts, (0, 0));
    assert_eq!(catcher.mails_to(&to).await.len(), 1);
    fixture.finish().await;
}

#[tokio::test]
async fn jobs_held_through_an_smtp_outage_all_arrive_once_it_is_back_and_none_is_dead_lettered() {
    let smtp =
        Proxy::forward(testing::proxy::url_addr(&format!("smtp://{}:{}", testing::smtp_host(), testing::smtp_port())))
            .await;
    smtp.set(Mode::Down);
    let mut settings = test_settings_for_smtp_port(smtp.addr.port());
    settings.smtp.connect_timeout = Duration::from_millis(500);
    let prefetch = settings.queue.prefetch;
    let fixture = Fixture::start(settings).await;
    let to = MailCatcher::unique_address();
    let jobs: Vec<MailJob> = (0..30).map(|i| job(&to, &format!("outage {i:02}"))).collect();
    for job in &jobs {
        fixture.publish(job).await;
    }

    // The consumer took its window and holds it while the SMTP server is down.
    let queue = fixture.topology.queue.clone();
    eventually("the consumer holds a full prefetch window", PATIENCE, || async {
        (fixture.ready(&queue).await == 30 - u32::from(prefetch)).then_some(())
    })
    .await;
    let (status, body) = fixture.ready_answer().await;
    assert_eq!(status, 503, "the SMTP server is down: {body}");
    let catcher = MailCatcher::new();
    assert!(catcher.mails_to(&to).await.is_empty());
    assert_eq!(fixture.ready(&fixture.topology.dead_letter_queue).await, 0, "an outage dead-letters nothing");

    smtp.set(Mode::Up);
    let started = std::time::Instant::now();
    let mails = eventually("every held job arrives", PATIENCE, || async {
        let mails = catcher.mails_to(&to).await;
        (mails.len() >= jobs.len()).then_some(mails)
    })
    .await;
    eprintln!("30 jobs arrived {:?} after the SMTP server came back", started.elapsed());
    let expected: Vec<String> = jobs.iter().map(|j| j.mail.subject.as_str().to_owned()).collect();
    assert_eq!(subjects(&mails), expected, "each job arrives exactly once");
    eventually("the queue is drained", PATIENCE, || async { (fixture.ready(&queue).await == 0).then_some(()) }).await;
    assert_eq!(fixture.ready(&fixture.topology.dead_letter_queue).await, 0);
    fixture.finish().await;
    assert_eq!(catcher.mails_to(&to).await.len(), jobs.len(), "no more arrive after the drain");
}

/// An SMTP server that refuses every recipient for good (550), as a real TCP server.
async fn refusing_smtp_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 refusing.test ESMTP\r\n").await?;
                while let Some(line) = lines.next_line().await? {
                    let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 refusing.test\r\n",
                        "RCPT" => b"550 5.1.1 no such mailbox\r\n",
                        "QUIT" => b"221 bye\r\n",
                        _ => b"250 ok\r\n",
                    };
                    write.write_all(answer).await?;
                    if verb == "QUIT" {
                        break;
                    }
                }
                Ok::<_, std::io::Error>(())
            });
        }
    });
    port
}

#[tokio::test]
async fn a_job_the_smtp_server_refuses_for_good_is_dead_lettered() {
    let port = refusing_smtp_server().await;
    let fixture = Fixture::start(test_settings_for_smtp_port(port)).await;
    let refused = job(&MailCatcher::unique_address(), "refused");
    fixture.publish(&refused).await;

    let dead = fixture.topology.dead_letter_queue.clone();
    let message = eventually("the job in the dead-letter queue", PATIENCE, || async {
        fixture.channel.basic_get(dead.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap()
    })
    .await;
    let back: MailJob = serde_json::from_slice(&message.delivery.data).unwrap();
    assert_eq!(back.id, refused.id);
    assert_eq!(fixture.ready(&fixture.topology.queue).await, 0);
    fixture.finish().await;
}

#[tokio::test]
async fn a_redelivered_job_already_sent_is_not_sent_again() {
    let mut settings = test_settings();
    // One job at a time, in order: the marker below is handled after the repeat.
    settings.queue.prefetch = 1;
    let fixture = Fixture::start(settings).await;
    let to = MailCatcher::unique_address();
    let once = job(&to, "once");
    fixture.publish(&once).await;
    let catcher = MailCatcher::new();
    catcher.wait_for_mail_to(&to, PATIENCE).await;

    // The same job again, as RabbitMQ redelivers it after a lost ack, then a marker.
    fixture.publish(&once).await;
    fixture.publish(&job(&to, "marker")).await;
    let mails = eventually("the marker arrives", PATIENCE, || async {
        let mails = catcher.mails_to(&to).await;
        mails.iter().any(|m| m.subject == "marker").then_some(mails)
    })
    .await;
    assert_eq!(subjects(&mails), ["marker", "once"], "the repeated id was acked without a second send");
    assert_eq!(fixture.ready(&fixture.topology.dead_letter_queue).await, 0);
    fixture.finish().await;
}

#[tokio::test]
async fn a_queued_jobs_log_lines_carry_the_trace_of_its_publisher() {
    use tracing::Instrument;
    let logs = testing::capture_logs();
    let fixture = Fixture::start(test_settings()).await;
    let to = MailCatcher::unique_address();
    let request = tracing::info_span!("request");
    let trace_id = service_kit::trace::trace_id(&request).expect("the test's OTel layer");
    fixture.publish(&job(&to, "traced")).instrument(request).await;

    MailCatcher::new().wait_for_mail_to(&to, PATIENCE).await;
    let line = eventually("the sent line", PATIENCE, || async {
        logs.lines()
            .into_iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(&line).ok())
            .find(|line| line["message"] == "queued mail sent")
    })
    .await;
    assert_eq!(line["trace_id"], trace_id.as_str(), "{line}");
    let spans: Vec<&str> = line["spans"].as_array().unwrap().iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(spans[..2], ["amqp.delivery", "mailer.job"], "{line}");
    fixture.finish().await;
}
