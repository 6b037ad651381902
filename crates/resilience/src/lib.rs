//! Resilience building blocks for orderflow: today a circuit breaker (closed → open → half-open)
//! with a bucketed rolling window, an injectable [`Clock`] and a `watch` channel of its state.
//!
//! It owns only the decision "may this call go through?" and the bookkeeping behind it. It must
//! never make, retry, time out or sleep around the protected call itself, never decide what
//! counts as a failure (the caller reports outcomes through a [`Permit`]), never spawn tasks,
//! never hold a lock across an `.await`, and never panic.
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

mod breaker;
mod clock;
mod config;
mod window;

pub use breaker::{BreakerSnapshot, BreakerState, CircuitBreaker, Permit, Rejected};
pub use clock::{BoxSleep, Clock, ManualClock, SystemClock};
pub use config::{BreakerConfig, ConfigError};
pub use window::WindowCounts;
