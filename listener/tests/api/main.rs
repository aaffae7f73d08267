//! The listener against real servers: RabbitMQ, a logger running in-process, and MongoDB.

mod cluster;
mod dead_letter;
mod delivery;
mod faults;
mod go_original;
mod health;
mod helpers;
mod trace;
