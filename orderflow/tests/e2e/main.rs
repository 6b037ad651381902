//! The whole saga end to end: four services, the gateway simulator and a real nats-server, on
//! SQLite and on PostgreSQL. Every test ends with the invariant checker. Also here: `orderflow
//! load` and `bench --quick` against real systems (`bench_smoke`), and the fault-injection suite
//! on a 3-node cluster (`verify`), and the live dashboard in headless Chromium (`dashboard`). Memory per order is measured in its own binary (`memory.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bench_smoke;
mod cli;
mod dashboard;
mod dlq;
mod helpers;
mod identities;
mod observability;
mod saga;
mod verify;
