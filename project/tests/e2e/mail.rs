//! `mail`: through the broker and the mailer to the SMTP catcher, checked in the catcher's API.

use serde_json::json;
use service_kit::testing::{MailCatcher, unique_name};

use crate::helpers::{EFFECT_TIMEOUT, stack};

#[tokio::test]
async fn mail_reaches_the_catcher_with_its_subject_sender_and_both_parts() {
    let stack = stack().await;
    let catcher = MailCatcher::new();
    let to = MailCatcher::unique_address();
    let subject = unique_name("e2e-subject");
    let message = unique_name("Hello from the end-to-end test");
    let answer = stack
        .handle_signed_in(&json!({"action": "mail", "mail": {"from": "e2e@example.com", "to": to, "subject": subject, "message": message}}))
        .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body, json!({"error": false, "message": format!("Message sent to {to}")}));

    let mail = catcher.wait_for_mail_to(&to, EFFECT_TIMEOUT).await;
    assert_eq!(mail.subject, subject, "{mail:?}");
    assert_eq!(mail.from.iter().map(|a| a.address.as_str()).collect::<Vec<_>>(), ["e2e@example.com"], "{mail:?}");
    assert_eq!(mail.to.iter().map(|a| a.address.as_str()).collect::<Vec<_>>(), [to.as_str()], "{mail:?}");
    let content_type = mail.headers["content-type"].as_str().unwrap_or_default();
    assert!(content_type.starts_with("multipart/alternative"), "a plain and an HTML part: {content_type:?}");
    let text = mail.text.as_deref().unwrap_or_default();
    assert!(text.contains(&message), "the plain part carries the message: {text:?}");
    let html = mail.html.as_deref().unwrap_or_default();
    assert!(html.contains(&message) && html.contains("<body"), "the HTML part carries the message: {html:?}");
    assert_eq!(catcher.mails_to(&to).await.len(), 1, "sent once");
}
