//! orderflow-platform against real SQLite and PostgreSQL (and a real nats-server for the relay),
//! one test binary: group commit (`writer`), the transactional outbox (`outbox`) and inbox
//! pruning (`inbox`), and PostgreSQL over TLS (`tls`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod inbox;
mod outbox;
mod roles;
mod tls;
mod writer;
