//! gateway-sim: a stand-in for the external payment gateway that the payment service calls.
//!
//! It owns a durable ledger of charges keyed by `Idempotency-Key` (a SQLite file; the same key
//! always gets the same charge, whatever faults are active, across restarts too) and the faults an operator injects through
//! `/admin/faults`: added latency, a decline rate, an error rate and a full outage. Faults only
//! touch requests that would create a new charge (latency touches every valid charge request).
//! It must never record a charge for a request it answered with an error, never create a second
//! charge for a known key, and never answer 500 except for the injected `error_rate`.
//!
//! The binary is a thin shell around [`startup::run`]; tests and `orderflow up` build the same
//! `startup::router` in-process.

pub(crate) mod configuration;
pub mod domain;
pub mod problem;
pub mod routes;
pub mod startup;
pub(crate) mod state;
pub(crate) mod storage;

pub use configuration::{Cli, Config, ConfigError, Overrides};
pub use startup::{bind, run};
pub use state::AppState;
