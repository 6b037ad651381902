//! orderflow-platform against real SQLite and PostgreSQL (and a real nats-server for the relay),
//! one test binary: group commit (`writer`), the transactional outbox (`outbox`) and inbox
//! pruning (`inbox`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod inbox;
mod outbox;
mod writer;
