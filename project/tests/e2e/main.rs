//! End-to-end tests against the whole RUNNING stack (`bash project/stack.sh up --detach`):
//! every request goes to the real broker on its real port, and every effect is checked in the
//! real store behind it: the user in PostgreSQL, log entries in MongoDB (written by the logger
//! directly or through RabbitMQ and the listener), mail in the SMTP catcher's API.
//!
//! Addresses default to the local ports of DESIGN.md; `E2E_BROKER_URL` and `E2E_AUTH_URL`
//! override them, `E2E_STACK_LOGS` the directory of the stack's log files (`secrets`), and
//! `TEST_PG_URL` / `TEST_MONGO_URL` / `TEST_MAILCATCHER_URL` the stores (`service_kit::testing`). Every test uses names and addresses of its own, so the tests run in
//! parallel with each other and with a person clicking the test page.

mod auth;
mod helpers;
mod logs;
mod mail;
mod metrics;
mod secrets;
