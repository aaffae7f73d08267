use std::net::TcpListener;
use std::time::{Duration, Instant};

use service_kit::testing::{MailCatcher, eventually, free_port};

use crate::helpers::{OwnMaildev, mail_to, spawn_app_with, test_settings_for_smtp_port};

/// "Quickly": far below the send timeout, so the refusal is not a timeout in disguise.
const QUICK: Duration = Duration::from_secs(2);

/// Sends to a fresh recipient and asserts a fast 502 naming the mail server.
async fn assert_send_fails_fast(app: &crate::helpers::TestApp) {
    let started = Instant::now();
    let (status, reply) = app.send(&mail_to(&MailCatcher::unique_address())).await.status_and_envelope();
    assert_eq!(status, 502, "{reply:?}");
    assert!(reply.message.contains("cannot reach the mail server"), "{:?}", reply.message);
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
}

/// Sends to a fresh recipient and waits for the mail in `maildev`.
async fn assert_send_arrives(app: &crate::helpers::TestApp, maildev: &OwnMaildev) {
    let to = MailCatcher::unique_address();
    let (status, reply) = app.send(&mail_to(&to)).await.status_and_envelope();
    assert_eq!(status, 202, "{reply:?}");
    let mail = maildev.catcher.wait_for_mail_to(&to, Duration::from_secs(5)).await;
    assert_eq!(mail.subject, "Test email");
}

async fn wait_until_ready(app: &crate::helpers::TestApp) {
    eventually("/ready to answer 200", Duration::from_secs(10), || async {
        (app.get("/ready").await.status == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_mailer_answers_502_while_the_smtp_server_is_down_and_sends_again_once_it_is_back() {
    let smtp_port = free_port();
    let app = spawn_app_with(test_settings_for_smtp_port(smtp_port)).await;

    // Down from the start: the service runs, says so on /ready, and refuses sends quickly.
    assert_send_fails_fast(&app).await;
    let (status, ready) = app.get("/ready").await.status_and_envelope();
    assert_eq!(status, 503, "{ready:?}");
    assert_ne!(ready.data.unwrap()["smtp"], "ok");

    // Up: the same running app sends.
    let maildev = OwnMaildev::start(smtp_port, &[]).await;
    wait_until_ready(&app).await;
    assert_send_arrives(&app, &maildev).await;

    // Down again: the pooled connection is dead; the next send notices and fails fast.
    maildev.stop();
    assert_send_fails_fast(&app).await;

    // Back again: a new connection replaces the dead one.
    let maildev = OwnMaildev::start(smtp_port, &[]).await;
    assert_send_arrives(&app, &maildev).await;
}

#[tokio::test]
async fn a_server_refusing_our_credentials_gives_a_502_with_its_reply_code() {
    let smtp_port = free_port();
    let maildev = OwnMaildev::start(smtp_port, &["--incoming-user", "mailer", "--incoming-pass", "right"]).await;
    let mut settings = test_settings_for_smtp_port(smtp_port);
    settings.smtp.username = "mailer".into();
    settings.smtp.password = "wrong".into();
    let app = spawn_app_with(settings.clone()).await;

    let (status, reply) = app.send(&mail_to(&MailCatcher::unique_address())).await.status_and_envelope();

    assert_eq!(status, 502, "{reply:?}");
    assert!(reply.message.contains("refused the mail (SMTP 535)"), "{:?}", reply.message);

    // The right password gets through the same server.
    settings.smtp.password = "right".into();
    let app = spawn_app_with(settings).await;
    assert_send_arrives(&app, &maildev).await;
}

#[tokio::test]
async fn a_silent_smtp_server_gives_a_504_within_the_send_timeout() {
    // Accepts TCP connections (the kernel's backlog) but never sends a greeting.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut settings = test_settings_for_smtp_port(silent.local_addr().unwrap().port());
    settings.smtp.send_timeout = Duration::from_millis(500);
    let app = spawn_app_with(settings).await;

    let started = Instant::now();
    let (status, reply) = app.send(&mail_to(&MailCatcher::unique_address())).await.status_and_envelope();

    assert_eq!(status, 504, "{reply:?}");
    assert!(reply.message.contains("did not confirm"), "{:?}", reply.message);
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    let (status, _) = app.get("/ready").await.status_and_envelope();
    assert_eq!(status, 503);
}
