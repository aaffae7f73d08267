//! The broker's API tests: real servers over real connections. Downstreams that are down are
//! closed ports; downstreams that hang are TCP servers that accept and never answer; the
//! success paths run the real authentication, logger, mailer and listener in-process.

mod actions;
mod backlog;
mod bad_input;
mod basics;
mod breakers;
mod downstream_failures;
mod edge;
mod events;
mod fallback;
mod go_original;
mod helpers;
mod limits;
mod login_storm;
mod mail_queue;
mod metrics;
mod stack;
mod subjects;
mod timing;
mod tokens;
mod trace;
