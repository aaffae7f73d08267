//! The Go original's listener and authentication service posting to this logger's `POST /log`:
//! their exact requests (`contract::go_original`) are stored and answered as the original did.

use contract::go_original;
use service_kit::testing::send_as_the_go_original;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_go_originals_log_requests_are_stored_and_answered_202_logged() {
    let app = spawn_app().await;
    let fixtures = [go_original::log_from_listener(), go_original::log_from_authentication()];
    assert_eq!(fixtures[1].request.header("content-type"), None, "its authentication service sends none");

    for fixture in &fixtures {
        let answer = send_as_the_go_original(&app.logger.http_url, &fixture.request).await;
        let expected = fixture.response.envelope();
        // The original's listener fails an event on anything but 202.
        assert_eq!(answer.status, fixture.response.status, "{}: {}", fixture.about, answer.body);
        assert_eq!((answer.body["error"].as_bool(), answer.message()), (Some(false), expected.message.as_str()));
    }

    let documents = app.stored().await;
    for fixture in &fixtures {
        let sent: serde_json::Value = fixture.request.json();
        let found = documents.iter().find(|d| d.get_str("name") == Ok(sent["name"].as_str().unwrap()));
        let document = found.unwrap_or_else(|| panic!("{sent} stored: {documents:?}"));
        assert_eq!(document.get_str("data").unwrap(), sent["data"].as_str().unwrap());
        assert_eq!(document.get_str("level").unwrap(), "INFO", "no level: INFO");
    }
}
