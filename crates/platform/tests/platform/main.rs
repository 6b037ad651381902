//! orderflow-platform against real SQLite and PostgreSQL (and a real nats-server for the relay),
//! one test binary: group commit (`writer`), the transactional outbox (`outbox`) and inbox
//! pruning (`inbox`), PostgreSQL over TLS (`tls`), and a service starting before PostgreSQL or
//! NATS is reachable (`startup`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod inbox;
mod outbox;
mod roles;
mod startup;
mod tls;
mod writer;
