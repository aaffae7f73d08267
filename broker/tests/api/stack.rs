//! The whole system in-process: authentication, logger, mailer and listener on port 0 with a
//! Postgres database, a Mongo database and an exchange/queue of their own, and a broker in front.

use std::time::Duration;

use broker::Settings;
use logger::testing::TestLogger;
use mongodb::bson::{Document, doc};
use service_kit::amqp::Topology;
use service_kit::testing::{self, MailCatcher, TestMongo, TestPostgres, eventually, stored_logs, unique_name};
use service_kit::{Env, HttpSettings};

use crate::helpers::{TestApp, spawn_broker};

/// The running system; [`TestStack::cleanup`] removes what it left on the shared RabbitMQ.
pub struct TestStack {
    pub broker: TestApp,
    /// The authentication service's database (dropped with the stack).
    _postgres: TestPostgres,
    /// The logger, with its database (dropped with the stack).
    pub logger: TestLogger,
    /// The listener's exchange and queue.
    pub topology: Topology,
    /// The mail jobs' exchange and queue, shared by the broker and the mailer.
    pub mail_topology: Topology,
    pub listener: listener::StopHandle,
    /// The SMTP catcher the mailer sends to.
    pub mail: MailCatcher,
}

/// Starts every service, then a broker pointing at them; returns once the listener consumes.
pub async fn spawn_stack() -> TestStack {
    spawn_stack_with(|_| {}).await
}

/// As [`spawn_stack`], with the broker's settings adjusted by `adjust` (e.g. RabbitMQ down).
pub async fn spawn_stack_with(adjust: impl FnOnce(&mut Settings)) -> TestStack {
    service_kit::telemetry::init_for_tests();
    let postgres = TestPostgres::create().await;
    let exchange = unique_name("broker-ex");
    let queue = unique_name("broker-q");
    let mail_topology = Topology::mail(&unique_name("broker-mail-ex"), &unique_name("broker-mail-q"));

    let mut settings =
        authentication::Settings::from_env(&Env::from_pairs([("DSN", postgres.url.as_str()), ("BCRYPT_COST", "4")]))
            .expect("authentication settings");
    settings.http = HttpSettings::ephemeral();
    let auth = authentication::Application::build(settings).await.expect("authentication starts");
    let auth_url = format!("http://127.0.0.1:{}", auth.port());
    tokio::spawn(auth.run_until_stopped());

    let logger = TestLogger::spawn(TestMongo::new()).await;
    let logger_rpc_addr = logger.rpc_addr.clone();

    let smtp_port = testing::smtp_port().to_string();
    let mut settings = mailer::Settings::from_env(&Env::from_pairs([
        ("MAIL_HOST", testing::smtp_host().as_str()),
        ("MAIL_PORT", smtp_port.as_str()),
        ("FROM_ADDRESS", "broker-tests@example.com"),
    ]))
    .expect("mailer settings");
    settings.http = HttpSettings::ephemeral();
    settings.queue.rabbit_url = testing::rabbit_url().into();
    settings.queue.exchange = mail_topology.exchange.clone();
    settings.queue.queue = mail_topology.queue.clone();
    let mailer = mailer::Application::build(settings).await.expect("the mailer starts");
    let mailer_url = format!("http://127.0.0.1:{}", mailer.port());
    tokio::spawn(mailer.run_until_stopped());

    let settings = listener_settings(&logger_rpc_addr, &exchange, &queue);
    let topology = settings.topology();
    let (listener_stop, listener_ready) = spawn_listener(settings).await;

    let rabbit_url = testing::rabbit_url();
    let mut settings = Settings::from_env(&Env::default()).expect("broker settings");
    settings.auth_url = auth_url;
    settings.logger_rpc_addr = logger_rpc_addr;
    settings.mailer_url = mailer_url;
    settings.rabbit_url = rabbit_url.into();
    settings.exchange = exchange;
    settings.queue = queue.clone();
    settings.mail_exchange = mail_topology.exchange.clone();
    settings.mail_queue = mail_topology.queue.clone();
    // The open course mode unless a test protects actions (`tokens.rs`).
    settings.protect = broker::protect::ProtectSettings::open();
    // The rate limits stay at their defaults: no test of the real path comes near them.
    adjust(&mut settings);
    let broker = spawn_broker(settings).await;
    // The queue exists (and is bound) once the listener is ready; events published before
    // would have nowhere to go.
    wait_until_ready(&broker.http, &listener_ready).await;

    TestStack {
        broker,
        _postgres: postgres,
        logger,
        topology,
        mail_topology,
        listener: listener_stop,
        mail: MailCatcher::new(),
    }
}

/// A listener's settings for the logger at `logger_rpc_addr`, on `exchange` and `queue`, with a
/// connection name of its own.
pub fn listener_settings(logger_rpc_addr: &str, exchange: &str, queue: &str) -> listener::Settings {
    let connection_name = unique_name("broker-test-listener");
    let rabbit_url = testing::rabbit_url();
    let mut settings = listener::Settings::from_env(&Env::from_pairs([
        ("RABBIT_URL", rabbit_url.as_str()),
        ("LOGGER_RPC_ADDR", logger_rpc_addr),
        ("QUEUE_NAME", queue),
        ("EXCHANGE", exchange),
        ("CONNECTION_NAME", connection_name.as_str()),
    ]))
    .expect("listener settings");
    settings.http = HttpSettings::ephemeral();
    settings
}

/// Starts a listener in-process; returns its stop handle and its `/ready` URL.
pub async fn spawn_listener(settings: listener::Settings) -> (listener::StopHandle, String) {
    let listener = listener::Application::build(settings).await.expect("the listener starts");
    let ready = format!("http://127.0.0.1:{}/ready", listener.port());
    let stop = listener.stop_handle();
    tokio::spawn(listener.run_until_stopped());
    (stop, ready)
}

/// Waits until `ready` (a `/ready` URL) answers 2xx.
pub async fn wait_until_ready(http: &reqwest::Client, ready: &str) {
    eventually(&format!("{ready} to be ready"), Duration::from_secs(10), || async {
        let response = http.get(ready).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
}

/// Deletes `topology`'s exchanges and queues from the shared RabbitMQ.
pub async fn delete_topology(topology: &Topology) {
    let connection = lapin::Connection::connect(&testing::rabbit_url(), lapin::ConnectionProperties::default())
        .await
        .expect("connect to RabbitMQ");
    let channel = connection.create_channel().await.expect("a channel");
    topology.delete(&channel).await.expect("delete the test topology");
    let _ = connection.close(0, "done".into()).await;
}

impl TestStack {
    /// The stored log entries matching `filter`, straight from MongoDB.
    pub async fn stored(&self, filter: Document) -> Vec<Document> {
        stored_logs(&self.logger.mongo.database().await, filter).await
    }

    /// Waits until exactly one entry matches `filter` and returns it.
    pub async fn wait_for_entry(&self, what: &str, filter: Document) -> Document {
        eventually(what, Duration::from_secs(10), || {
            let filter = filter.clone();
            async move {
                let mut found = self.stored(filter).await;
                (found.len() == 1).then(|| found.remove(0))
            }
        })
        .await
    }

    /// Stops the listener and deletes its exchange and queues from the shared RabbitMQ.
    pub async fn cleanup(self) {
        tokio::time::timeout(Duration::from_secs(20), self.listener.stop()).await.expect("the listener stops");
        delete_topology(&self.topology).await;
        delete_topology(&self.mail_topology).await;
    }
}

/// `{"name": name}`, for [`TestStack::stored`].
pub fn named(name: &str) -> Document {
    doc! { "name": name }
}
