//! The breaker's tuning, validated before a breaker can be built from it.

use std::time::Duration;

/// How a [`CircuitBreaker`](crate::CircuitBreaker) decides to open and to close again.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    /// Length of the rolling window over which outcomes are counted.
    pub window: Duration,
    /// Number of time buckets the window is split into; outcomes age out one bucket at a time,
    /// so the effective window is between `window - window / buckets` and `window` long.
    pub buckets: u32,
    /// Fewest calls in the window before the failure rate is trusted enough to open.
    pub min_calls: u32,
    /// Share of failed calls in the window (`0 < rate <= 1`) at which the breaker opens.
    pub failure_rate: f64,
    /// How long the breaker stays open before it lets probes through (half-open).
    pub open_for: Duration,
    /// Probes allowed in flight at once while half-open, and successes needed to close.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    /// 10 s window in 10 buckets, at least 5 calls, opens at 50 % failures, first probe 2 s
    /// after opening (SPEC: within 5 s), one successful probe closes.
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            buckets: 10,
            min_calls: 5,
            failure_rate: 0.5,
            open_for: Duration::from_secs(2),
            half_open_probes: 1,
        }
    }
}

/// Why a [`BreakerConfig`] was rejected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// `window` is zero.
    #[error("window must be longer than zero")]
    ZeroWindow,
    /// `buckets` is zero, or so large that a bucket would be shorter than a millisecond.
    #[error("buckets must be between 1 and the window length in milliseconds, got {0}")]
    InvalidBuckets(u32),
    /// `min_calls` is zero.
    #[error("min_calls must be at least 1")]
    ZeroMinCalls,
    /// `failure_rate` is not a number in `(0, 1]`.
    #[error("failure_rate must be greater than 0 and at most 1, got {0}")]
    InvalidFailureRate(f64),
    /// `open_for` is zero.
    #[error("open_for must be longer than zero")]
    ZeroOpenFor,
    /// `half_open_probes` is zero.
    #[error("half_open_probes must be at least 1")]
    ZeroHalfOpenProbes,
}

impl BreakerConfig {
    /// Checks that the configuration describes a breaker that can work.
    ///
    /// A `failure_rate` of 0 is rejected because it would open a perfectly healthy circuit.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.window.is_zero() {
            return Err(ConfigError::ZeroWindow);
        }
        if self.buckets == 0 || self.window / self.buckets < Duration::from_millis(1) {
            return Err(ConfigError::InvalidBuckets(self.buckets));
        }
        if self.min_calls == 0 {
            return Err(ConfigError::ZeroMinCalls);
        }
        if !(self.failure_rate > 0.0 && self.failure_rate <= 1.0) {
            return Err(ConfigError::InvalidFailureRate(self.failure_rate));
        }
        if self.open_for.is_zero() {
            return Err(ConfigError::ZeroOpenFor);
        }
        if self.half_open_probes == 0 {
            return Err(ConfigError::ZeroHalfOpenProbes);
        }
        Ok(())
    }

    /// Width of one bucket of the rolling window.
    pub(crate) fn bucket_width(&self) -> Duration {
        self.window / self.buckets.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(change: impl FnOnce(&mut BreakerConfig)) -> BreakerConfig {
        let mut config = BreakerConfig::default();
        change(&mut config);
        config
    }

    #[test]
    fn the_default_configuration_is_valid_and_probes_within_five_seconds() {
        let config = BreakerConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert!(config.open_for <= Duration::from_secs(5));
    }

    #[test]
    fn config_validation_rejects_nonsense() {
        let cases = [
            (with(|c| c.window = Duration::ZERO), ConfigError::ZeroWindow),
            (with(|c| c.buckets = 0), ConfigError::InvalidBuckets(0)),
            (with(|c| c.buckets = 1_000_000), ConfigError::InvalidBuckets(1_000_000)),
            (with(|c| c.min_calls = 0), ConfigError::ZeroMinCalls),
            (with(|c| c.failure_rate = 0.0), ConfigError::InvalidFailureRate(0.0)),
            (with(|c| c.failure_rate = -0.1), ConfigError::InvalidFailureRate(-0.1)),
            (with(|c| c.failure_rate = 1.5), ConfigError::InvalidFailureRate(1.5)),
            (with(|c| c.open_for = Duration::ZERO), ConfigError::ZeroOpenFor),
            (with(|c| c.half_open_probes = 0), ConfigError::ZeroHalfOpenProbes),
        ];
        for (config, expected) in cases {
            assert_eq!(config.validate(), Err(expected), "{config:?}");
        }
    }

    #[test]
    fn config_validation_rejects_a_failure_rate_that_is_not_a_number() {
        let config = with(|c| c.failure_rate = f64::NAN);

        assert!(matches!(config.validate(), Err(ConfigError::InvalidFailureRate(_))));
    }

    #[test]
    fn config_validation_accepts_a_failure_rate_of_exactly_one() {
        assert_eq!(with(|c| c.failure_rate = 1.0).validate(), Ok(()));
    }
}
