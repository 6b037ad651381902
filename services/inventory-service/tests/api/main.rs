//! inventory-service end to end: the real service in process, a real nats-server, and both real
//! databases (SQLite and PostgreSQL). Every test is written once as `async fn(DbBackend)` and
//! instantiated for both backends by `orderflow_test_support::both_databases!`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod inventory_api;
mod lifecycle;
mod max_deliveries;
mod payments;
mod reservations;
