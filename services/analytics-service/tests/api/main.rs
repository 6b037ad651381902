//! analytics-service against a real nats-server and real SQLite files / PostgreSQL: events are
//! published as the other services would, and the read model, the summary, the stream, the page
//! and the rebuild are checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod http;
mod read_model;
mod rebuild;
