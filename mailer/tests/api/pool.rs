use std::time::Duration;

use serde_json::json;
use service_kit::testing::{self, MailCatcher, eventually};

use crate::helpers::{CountingProxy, spawn_app_with, test_settings_for_smtp_port};

#[tokio::test]
async fn concurrent_sends_share_at_most_pool_size_smtp_connections() {
    let proxy = CountingProxy::start(testing::smtp_host(), testing::smtp_port()).await;
    let mut settings = test_settings_for_smtp_port(proxy.port);
    settings.smtp.pool_size = 3;
    let app = spawn_app_with(settings).await;
    let to = MailCatcher::unique_address();
    let bodies: Vec<_> = (0..30).map(|i| json!({"to": to, "subject": format!("Pooled {i}"), "message": "m"})).collect();

    let replies = futures::future::join_all(bodies.iter().map(|body| app.send(body))).await;

    assert!(replies.iter().all(|reply| reply.status == 202));
    assert!((1..=3).contains(&proxy.accepted()), "30 mails over {} connections", proxy.accepted());
    let arrived = eventually("30 mails", Duration::from_secs(5), || async {
        let mails = app.catcher.mails_to(&to).await;
        (mails.len() >= 30).then_some(mails.len())
    })
    .await;
    assert_eq!(arrived, 30);
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout_and_replaced_when_needed() {
    let proxy = CountingProxy::start(testing::smtp_host(), testing::smtp_port()).await;
    let mut settings = test_settings_for_smtp_port(proxy.port);
    settings.smtp.pool_idle_timeout = Duration::from_millis(200);
    let app = spawn_app_with(settings).await;

    let body = crate::helpers::mail_to(&MailCatcher::unique_address());
    assert_eq!(app.send(&body).await.status, 202);
    assert_eq!((proxy.accepted(), proxy.open()), (1, 1), "the connection stays open for reuse");

    eventually("the idle connection to close", Duration::from_secs(5), || async { (proxy.open() == 0).then_some(()) })
        .await;
    assert_eq!(app.send(&body).await.status, 202);
    assert_eq!(proxy.accepted(), 2, "a new connection replaced the closed one");
}
