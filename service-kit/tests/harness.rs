//! Smoke tests of the test harness: each real server answers through the same driver crates
//! the services use, and the isolation helpers really isolate.

use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use mongodb::bson::doc;
use service_kit::testing::{self, MailCatcher, TestMongo, TestPostgres};

#[tokio::test]
async fn each_test_gets_its_own_postgres_database_which_is_dropped_afterwards() {
    let db = TestPostgres::create().await;
    let other = TestPostgres::create().await;
    assert_ne!(db.name, other.name);

    let client = db.client().await;
    client.batch_execute("CREATE TABLE t (v int); INSERT INTO t VALUES (41), (1)").await.unwrap();
    let sum: i64 = client.query_one("SELECT sum(v) FROM t", &[]).await.unwrap().get(0);
    assert_eq!(sum, 42);
    // The other database does not see this table.
    let other_client = other.client().await;
    assert!(other_client.query_one("SELECT count(*) FROM t", &[]).await.is_err());

    let name = db.name.clone();
    drop(client);
    drop(db);
    let (admin, connection) = tokio_postgres::connect(&testing::pg_admin_url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let left: i64 =
        admin.query_one("SELECT count(*) FROM pg_database WHERE datname = $1", &[&name]).await.unwrap().get(0);
    assert_eq!(left, 0, "the test database should be dropped");
}

#[tokio::test]
async fn each_test_gets_its_own_mongo_database() {
    let db = TestMongo::new();
    let client = db.client().await;
    let collection = client.database(&db.name).collection::<mongodb::bson::Document>("smoke");
    collection.insert_one(doc! {"name": "smoke", "n": 1}).await.unwrap();
    let found = collection.find_one(doc! {"name": "smoke"}).await.unwrap().expect("the document we wrote");
    assert_eq!(found.get_i32("n").unwrap(), 1);
    assert_ne!(db.name, TestMongo::new().name);
}

#[tokio::test]
async fn rabbitmq_carries_a_message_on_a_uniquely_named_queue() {
    let connection = Connection::connect(&testing::rabbit_url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let queue = testing::unique_name("smoke");
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions { auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            b"hello",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let message = testing::eventually("the message on the queue", Duration::from_secs(5), || async {
        channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap()
    })
    .await;
    assert_eq!(message.delivery.data, b"hello");
    channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
}

#[tokio::test]
async fn a_mail_sent_over_smtp_can_be_read_back_from_the_catcher() {
    let to = MailCatcher::unique_address();
    let mail = Message::builder()
        .from("Harness <harness@example.com>".parse::<Mailbox>().unwrap())
        .to(to.parse::<Mailbox>().unwrap())
        .subject("harness smoke")
        .multipart(MultiPart::alternative_plain_html("plain body".to_owned(), "<p>html body</p>".to_owned()))
        .unwrap();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(testing::smtp_host())
        .port(testing::smtp_port())
        .timeout(Some(Duration::from_secs(5)))
        .build();
    transport.send(mail).await.unwrap();

    let caught = MailCatcher::new().wait_for_mail_to(&to, Duration::from_secs(10)).await;
    assert_eq!(caught.subject, "harness smoke");
    assert_eq!(caught.from[0].address, "harness@example.com");
    assert!(caught.text.unwrap_or_default().contains("plain body"));
    assert!(caught.html.unwrap_or_default().contains("<p>html body</p>"));
}
