//! The logger against a real MongoDB wire server, one database per test.

mod go_original;
mod helpers;
mod http;
mod mongo_down;
mod overload;
mod restart;
mod retention;
mod rpc;
mod trace;
