//! The order service's API and handlers against a real nats-server and real SQLite and
//! PostgreSQL databases. Every test runs on both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod healthcheck;
mod helpers;
mod orders;
mod rate_limit;
mod saga_events;
mod trace_context;
mod validation;
mod versions;
