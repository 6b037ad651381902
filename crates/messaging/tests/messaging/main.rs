//! orderflow-messaging against a real nats-server, one test binary: the consumer runtime and
//! publishing (`runtime`), dead-letter administration (`dlq_admin`), TLS (`tls`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dlq_admin;
mod helpers;
mod identities;
mod publishing;
mod runtime;
mod tls;
