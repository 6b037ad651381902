//! orderflow-platform against real SQLite and PostgreSQL (and a real nats-server for the relay),
//! one test binary: group commit (`writer`) and the transactional outbox (`outbox`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod outbox;
mod writer;
