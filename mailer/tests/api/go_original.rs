//! The Go original's broker calling this mailer: its exact request (`contract::go_original`)
//! gets the answer it expects, 202 `sent to <to>`, and the mail goes out.

use std::time::Duration;

use contract::go_original;
use service_kit::testing::{MailCatcher, send_as_the_go_original};

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_go_originals_send_request_gets_202_sent_to_as_from_the_original() {
    let app = spawn_app().await;
    let mut fixture = go_original::send();
    // The fixture's bytes with a recipient of this test's own (the catcher is shared).
    let sent: serde_json::Value = fixture.request.json();
    let original_to = sent["to"].as_str().unwrap();
    let to = MailCatcher::unique_address();
    fixture.request.body = fixture.request.body.replace(original_to, &to);
    let expected = fixture.response.envelope().message.replace(original_to, &to);

    let answer = send_as_the_go_original(&app.address, &fixture.request).await;

    // The original's broker fails the action on anything but 202.
    assert_eq!(answer.status, fixture.response.status, "{}", answer.body);
    assert_eq!((answer.body["error"].as_bool(), answer.message()), (Some(false), expected.as_str()));
    let mail = app.catcher.wait_for_mail_to(&to, Duration::from_secs(10)).await;
    assert_eq!(mail.subject, sent["subject"].as_str().unwrap());
}
