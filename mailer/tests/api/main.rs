//! The mailer's API tests, against a real SMTP catcher (maildev) read back through its HTTP API.

mod go_original;
mod health;
mod helpers;
mod invalid_input;
mod pool;
mod queue;
mod send;
mod smtp_outage;
