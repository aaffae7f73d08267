//! The Go original's broker calling this service: its exact requests
//! (`contract::go_original`, no Content-Type, tab-indented JSON) get the answers it expects.

use contract::go_original;
use service_kit::testing::send_as_the_go_original;

use crate::helpers::{SEED_EMAIL, spawn_app};

#[tokio::test]
async fn the_go_originals_login_request_gets_202_and_the_user_as_from_the_original() {
    let app = spawn_app().await;
    let fixture = go_original::authenticate();
    assert_eq!(fixture.request.header("content-type"), None, "the original's broker sends none");
    let expected = fixture.response.envelope();

    let answer = send_as_the_go_original(&app.address, &fixture.request).await;

    // The original's broker needs 202 and `error` false, and passes `data` on.
    assert_eq!(answer.status, fixture.response.status, "{}", answer.body);
    assert_eq!((answer.body["error"].as_bool(), answer.message()), (Some(false), expected.message.as_str()));
    let (user, original) = (&answer.body["data"], expected.data.expect("the original's user"));
    assert_eq!(user["email"], original["email"]);
    assert_eq!(user["email"], SEED_EMAIL);
    for field in ["id", "active", "created_at", "updated_at"] {
        assert!(!user[field].is_null(), "{field} is there, as in the original's user: {user}");
    }
    assert!(user.get("password").is_none(), "never the hash");
}

#[tokio::test]
async fn the_go_originals_request_with_a_wrong_password_gets_the_401_its_broker_checks_for() {
    let app = spawn_app().await;
    let fixture = go_original::authenticate_wrong_password();

    let answer = send_as_the_go_original(&app.address, &fixture.request).await;

    // The original's broker tests for 401 (its own service answers 400, which it reports as
    // "error calling auth service"); the message is the original's.
    answer.assert_error(401, &fixture.response.envelope().message, "a wrong password");
}
