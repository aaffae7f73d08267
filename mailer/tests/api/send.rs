use std::time::Duration;

use serde_json::json;
use service_kit::testing::{MailCatcher, eventually};

use crate::helpers::{TEST_FROM_ADDRESS, TEST_FROM_NAME, spawn_app};

const ARRIVAL: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_sent_mail_arrives_with_its_sender_recipient_subject_and_both_parts() {
    let app = spawn_app().await;
    let to = MailCatcher::unique_address();
    let body = json!({
        "from": "me@example.com",
        "to": to,
        "subject": "Grüße from the mailer ✓",
        "message": "Hello world!\n\nSecond paragraph, naïve café.",
    });

    let (status, reply) = app.send(&body).await.status_and_envelope();

    assert_eq!(status, 202, "{reply:?}");
    assert_eq!(reply, contract::Envelope::ok(format!("sent to {to}")));
    let mail = app.catcher.wait_for_mail_to(&to, ARRIVAL).await;
    assert_eq!(mail.subject, "Grüße from the mailer ✓");
    assert_eq!(mail.from.len(), 1);
    assert_eq!(mail.from[0].address, "me@example.com");
    assert_eq!(mail.to.len(), 1);
    assert_eq!(mail.to[0].address, to);
    let content_type = mail.headers["content-type"].as_str().unwrap_or_default();
    assert!(content_type.starts_with("multipart/alternative"), "{content_type}");
    let text = mail.text.expect("a plain-text part");
    assert_eq!(text.trim_end(), "Hello world!\n\nSecond paragraph, naïve café.");
    let html = mail.html.expect("an HTML part");
    assert!(html.contains("Hello world!</p>"), "{html}");
    assert!(html.contains("Second paragraph, naïve café.</p>"), "{html}");
}

#[tokio::test]
async fn the_html_part_has_inlined_styles_and_the_message_escaped() {
    let app = spawn_app().await;
    let to = MailCatcher::unique_address();
    let body = json!({
        "to": to,
        "subject": "Escaping",
        "message": "<script>alert('pwned')</script>\n<b>not bold</b> & done",
    });

    let (status, reply) = app.send(&body).await.status_and_envelope();

    assert_eq!(status, 202, "{reply:?}");
    let mail = app.catcher.wait_for_mail_to(&to, ARRIVAL).await;
    let html = mail.html.expect("an HTML part");
    assert!(html.contains("&lt;script&gt;alert("), "the message is escaped: {html}");
    assert!(!html.contains("<script"), "no script element: {html}");
    assert!(html.contains("&lt;b&gt;not bold&lt;/b&gt; &amp; done"), "{html}");
    assert!(!html.contains("<style"), "the style block is inlined, then removed: {html}");
    assert!(html.contains(r#"<p style="margin: 0 0 16px 0;"#), "paragraphs carry inline styles: {html}");
    assert!(html.contains("max-width: 600px;"), "the container carries inline styles: {html}");
    assert!(mail.text.expect("a plain-text part").starts_with("<script>alert('pwned')</script>\n<b>not bold</b>"));
}

#[tokio::test]
async fn a_missing_or_blank_from_falls_back_to_from_name_and_from_address() {
    let app = spawn_app().await;
    for from in [None, Some(""), Some("   ")] {
        let to = MailCatcher::unique_address();
        let mut body = json!({"to": to, "subject": "Fallback", "message": "m"});
        if let Some(from) = from {
            body["from"] = json!(from);
        }

        let (status, reply) = app.send(&body).await.status_and_envelope();

        assert_eq!(status, 202, "from {from:?}: {reply:?}");
        let mail = app.catcher.wait_for_mail_to(&to, ARRIVAL).await;
        assert_eq!(mail.from.len(), 1, "from {from:?}");
        assert_eq!(mail.from[0].address, TEST_FROM_ADDRESS, "from {from:?}");
        assert_eq!(mail.from[0].name, TEST_FROM_NAME, "from {from:?}");
    }
}

#[tokio::test]
async fn concurrent_sends_all_arrive() {
    let app = spawn_app().await;
    let to = MailCatcher::unique_address();
    let subjects: Vec<String> = (0..20).map(|i| format!("Concurrent {i}")).collect();
    let bodies: Vec<_> = subjects.iter().map(|subject| json!({"to": to, "subject": subject, "message": "m"})).collect();

    let replies = futures::future::join_all(bodies.iter().map(|body| app.send(body))).await;

    for reply in replies {
        assert_eq!(reply.status, 202);
    }
    let mut arrived = eventually("20 mails", ARRIVAL, || async {
        let mails = app.catcher.mails_to(&to).await;
        (mails.len() >= subjects.len()).then_some(mails)
    })
    .await;
    arrived.sort_by(|a, b| a.subject.cmp(&b.subject));
    let mut expected = subjects.clone();
    expected.sort();
    assert_eq!(arrived.into_iter().map(|m| m.subject).collect::<Vec<_>>(), expected, "each mail arrives once");
}
