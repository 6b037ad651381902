//! The whole saga end to end: three services, the gateway simulator and a real nats-server, on
//! SQLite and on PostgreSQL. Every test ends with the invariant checker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod dlq;
mod helpers;
mod observability;
mod saga;
