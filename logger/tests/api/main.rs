//! The logger against a real MongoDB wire server, one database per test.

mod helpers;
mod http;
mod mongo_down;
mod restart;
mod rpc;
