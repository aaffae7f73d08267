//! Integration tests: the real service on port 0 against the real Postgres, one database per test.

mod authenticate;
mod go_original;
mod health;
mod helpers;
mod migrations;
mod overload;
mod register;
mod resilience;
