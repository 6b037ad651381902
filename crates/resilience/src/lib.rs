//! Resilience building blocks for orderflow: a circuit breaker (closed → open → half-open) with a
//! bucketed rolling window and a `watch` channel of its state, the one retry schedule
//! ([`Backoff`]: exponential, capped, jittered, optionally time-limited), and the injectable
//! [`Clock`] both read time from.
//!
//! It owns only decisions and the bookkeeping behind them: "may this call go through?" and "how
//! long until the next attempt, if any?". It must never make, retry, time out or sleep around the
//! protected call itself, never decide what counts as a failure (the caller reports outcomes
//! through a [`Permit`] and asks a [`Backoff`] for a delay), never spawn tasks, never hold a lock
//! across an `.await`, and never panic.
//!
//! ```no_run
//! use std::time::Duration;
//! use orderflow_resilience::{BreakerConfig, CircuitBreaker};
//!
//! let breaker = CircuitBreaker::new(BreakerConfig {
//!     open_for: Duration::from_secs(2),
//!     ..BreakerConfig::default()
//! })?;
//! if let Ok(permit) = breaker.try_acquire() {
//!     // … call the gateway, then:
//!     permit.success();
//! }
//! # Ok::<(), orderflow_resilience::ConfigError>(())
//! ```

mod backoff;
mod breaker;
mod clock;
mod config;
mod window;

pub use backoff::{Backoff, BackoffConfig, BackoffConfigError};
pub use breaker::{BreakerSnapshot, BreakerState, CircuitBreaker, Permit, Rejected};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{BreakerConfig, ConfigError};
pub use window::WindowCounts;
