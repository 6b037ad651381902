//! What every orderflow service shares, so that no service re-implements a reliability rule.
//!
//! - [`kernel`]: what a service is (the [`kernel::Service`] trait, its settings with
//!   [`kernel::CommonSettings`] flattened in) and the one way every service is built, run and
//!   drained; a service writes only its domain, storage, handlers, routes and wiring.
//! - [`db`] and [`sql`]: one code path for SQLite (a file per service, WAL, a writer thread and
//!   a reader thread owning their connections) and PostgreSQL (a schema per service), with
//!   embedded migrations.
//! - [`outbox`]: the transactional outbox — events are written in the same transaction as the
//!   state change, and a relay publishes them to JetStream as the writer hands them over after the
//!   commit, marks them sent, and sweeps the table for what a crash left (a re-send is harmless: `Nats-Msg-Id` de-duplicates).
//! - `writer`: group commit — concurrent units of work share one transaction and one commit,
//!   each in its own savepoint, and learn of their success only after the commit.
//! - [`inbox`]: the record of processed event ids that makes every handler idempotent.
//! - [`http`]: RFC 9457 problem+json, the JSON extractor that maps every bad input to one,
//!   `X-Correlation-ID` validation and propagation, health and readiness routes, serving with
//!   graceful shutdown.
//! - [`config`]: layered configuration (defaults < file < `ORDERFLOW__…` env < flags).
//! - `startup`: waiting for PostgreSQL and NATS with backoff while the port answers live 200
//!   and ready 503 naming what the service waits for, instead of exiting (a crash loop).
//! - [`shutdown`]: SIGTERM/SIGINT to a cancellation token.
//! - [`healthcheck`]: `<service> healthcheck`, a binary probing its own readiness (images without
//!   a shell).
//! - [`tls`]: ring as the process's one rustls crypto provider.
//!
//! It holds no global state and never decides business rules.

pub mod config;
pub mod db;
pub mod discovery;
pub mod healthcheck;
pub mod http;
pub mod inbox;
pub mod kernel;
pub mod outbox;
pub mod roles;
pub(crate) mod service;
pub mod shutdown;
pub mod sql;
pub(crate) mod startup;
pub mod tls;
pub(crate) mod writer;

pub use db::{Db, DbError, Migration};
pub use outbox::OutboxRelay;
pub use sql::{SqlError, Tx};
pub use writer::WriteError;

/// The current UTC time as RFC 3339 with millisecond precision (fixed width, so it sorts).
pub fn now_rfc3339() -> String {
    format_rfc3339(time::OffsetDateTime::now_utc())
}

/// Formats a timestamp as fixed-width RFC 3339 UTC with milliseconds.
pub fn format_rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}
