//! Exponential backoff with jitter: the one retry schedule of orderflow (connecting to NATS, the
//! outbox relay after a failed sweep, the payment service's gateway retries).
//!
//! It owns the arithmetic "how long to wait before the next attempt" and, given a [`Clock`],
//! whether a time budget is spent. It never sleeps, never makes the call being retried and never
//! decides what is worth retrying: the caller sleeps for the delay it hands out, on the same
//! clock (so tests drive it with a [`ManualClock`](crate::ManualClock) and never sleep).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{Clock, SystemClock};

/// The shape of a retry schedule: delays grow from `initial` by `multiplier` up to `max`, each
/// shortened by a random share of at most `jitter`, and the schedule gives up once `max_elapsed`
/// has passed (if set).
///
/// Jitter only ever shortens a delay, so `max` is a true ceiling and `initial` the longest first
/// delay: with `jitter = 0.5` the delay before retry `n` is uniform in
/// `[base(n) / 2, base(n)]`, which keeps a fleet of clients from retrying in lock-step.
#[derive(Clone, Debug, PartialEq)]
pub struct BackoffConfig {
    /// The delay before the first retry (before jitter).
    pub initial: Duration,
    /// Ceiling of every delay.
    pub max: Duration,
    /// Growth per retry, at least 1 (1 keeps the delay constant).
    pub multiplier: f64,
    /// Largest share of a delay that is random, `0..=1`; 0 makes the schedule deterministic.
    pub jitter: f64,
    /// Give up once this long has passed since the schedule started (or was reset); `None`
    /// retries forever.
    pub max_elapsed: Option<Duration>,
}

impl Default for BackoffConfig {
    /// 100 ms doubling to 5 s, up to half of each delay random, no time limit: the schedule
    /// that connecting, the outbox relay and the payment gateway retries have always used.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: 0.5,
            max_elapsed: None,
        }
    }
}

/// Why a [`BackoffConfig`] was rejected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BackoffConfigError {
    /// `initial` is zero: the caller would retry in a busy loop.
    #[error("the initial backoff must be longer than zero")]
    ZeroInitial,
    /// `max` is shorter than `initial`.
    #[error("the maximum backoff ({max:?}) must not be shorter than the initial one ({initial:?})")]
    MaxBelowInitial {
        /// The configured first delay.
        initial: Duration,
        /// The configured ceiling.
        max: Duration,
    },
    /// `multiplier` is below 1 (shrinking delays) or not a finite number.
    #[error("the backoff multiplier must be a finite number of at least 1, got {0}")]
    InvalidMultiplier(f64),
    /// `jitter` is not a number in `0..=1`.
    #[error("the backoff jitter must be between 0 and 1, got {0}")]
    InvalidJitter(f64),
    /// `max_elapsed` is zero: the schedule would give up before the first retry.
    #[error("the backoff time limit must be longer than zero")]
    ZeroMaxElapsed,
}

impl BackoffConfig {
    /// Checks that the configuration describes a schedule that can work.
    pub fn validate(&self) -> Result<(), BackoffConfigError> {
        if self.initial.is_zero() {
            return Err(BackoffConfigError::ZeroInitial);
        }
        if self.max < self.initial {
            return Err(BackoffConfigError::MaxBelowInitial { initial: self.initial, max: self.max });
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(BackoffConfigError::InvalidMultiplier(self.multiplier));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(BackoffConfigError::InvalidJitter(self.jitter));
        }
        if self.max_elapsed.is_some_and(|limit| limit.is_zero()) {
            return Err(BackoffConfigError::ZeroMaxElapsed);
        }
        Ok(())
    }

    /// The delay before retry `attempt` (0-based) without jitter:
    /// `min(initial × multiplierᵃᵗᵗᵉᵐᵖᵗ, max)`. Never overflows.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let nanos = self.initial.as_nanos() as f64 * self.multiplier.powi(exponent);
        // Infinity (a runaway product) and NaN (a nonsense multiplier) mean "past the ceiling".
        if nanos.is_nan() || nanos >= self.max.as_nanos() as f64 {
            return self.max;
        }
        // The cast saturates (at ~584 years), and `max` caps it again.
        Duration::from_nanos(nanos.round() as u64).min(self.max)
    }

    /// The delay before retry `attempt` (0-based), given a uniform random `sample` in `0..1`:
    /// the base delay shortened by `jitter × sample` of itself. A `sample` of 0 gives the base
    /// delay, one close to 1 the shortest delay allowed.
    ///
    /// Total for any input (values out of range are clamped), so it also serves callbacks that
    /// cannot report an error, such as the NATS client's reconnect delay.
    pub fn delay(&self, attempt: u32, sample: f64) -> Duration {
        let base = self.base_delay(attempt);
        let jitter = if self.jitter.is_nan() { 0.0 } else { self.jitter.clamp(0.0, 1.0) };
        let sample = if sample.is_nan() { 0.0 } else { sample.clamp(0.0, 1.0) };
        let share = jitter * sample;
        if share == 0.0 {
            return base;
        }
        let cut = Duration::try_from_secs_f64(base.as_secs_f64() * share).unwrap_or(base);
        base.saturating_sub(cut)
    }
}

/// A running retry schedule: hands out the delay before each retry and says when to give up.
///
/// Build one per operation being retried (or clone a prototype and [`reset`](Self::reset) it);
/// call [`next_delay`](Self::next_delay) after each failure and [`reset`](Self::reset) after a
/// success. Time comes from the injected [`Clock`]; jitter from the thread-local generator.
///
/// ```no_run
/// use std::time::Duration;
/// use orderflow_resilience::{Backoff, BackoffConfig};
///
/// # async fn call() -> Result<(), std::io::Error> { Ok(()) }
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let mut backoff = Backoff::new(BackoffConfig {
///     max_elapsed: Some(Duration::from_secs(60)),
///     ..BackoffConfig::default()
/// })?;
/// loop {
///     match call().await {
///         Ok(()) => break,
///         Err(e) => match backoff.next_delay() {
///             Some(delay) => tokio::time::sleep(delay).await,
///             None => return Err(e.into()), // the minute is up
///         },
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Backoff {
    config: BackoffConfig,
    clock: Arc<dyn Clock>,
    /// Delays handed out since the last reset.
    attempt: u32,
    /// When the schedule started or was last reset; `max_elapsed` counts from here.
    started: Instant,
    /// An absolute deadline set with [`Backoff::give_up_at`]; survives resets.
    give_up_at: Option<Instant>,
}

impl Default for Backoff {
    /// [`BackoffConfig::default`] on real time.
    fn default() -> Self {
        Self::unchecked(BackoffConfig::default())
    }
}

impl Backoff {
    /// A schedule on real time. Fails when the configuration does not validate.
    pub fn new(config: BackoffConfig) -> Result<Self, BackoffConfigError> {
        config.validate()?;
        Ok(Self::unchecked(config))
    }

    fn unchecked(config: BackoffConfig) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let started = clock.now();
        Self { config, clock, attempt: 0, started, give_up_at: None }
    }

    /// The same schedule on `clock` (tests pass a [`ManualClock`](crate::ManualClock)); it
    /// starts anew at the clock's "now".
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self.reset();
        self
    }

    /// Also gives up at `deadline` (an instant of this schedule's clock), whichever of it and
    /// `max_elapsed` comes first. Unlike `max_elapsed`, a reset does not move it: use it for a
    /// budget that runs from outside, such as the time an event was published.
    #[must_use]
    pub fn give_up_at(mut self, deadline: Instant) -> Self {
        self.give_up_at = Some(deadline);
        self
    }

    /// When the schedule gives up, if it ever does.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let elapsed_limit = self.config.max_elapsed.and_then(|limit| self.started.checked_add(limit));
        match (elapsed_limit, self.give_up_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time left before the schedule gives up (zero once it has); `None` without a limit.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline().map(|deadline| deadline.saturating_duration_since(self.clock.now()))
    }

    /// The wait before the next retry, or `None` once the time budget is spent. The last delay
    /// is cut short so that it ends at the deadline: one more attempt is made right then.
    pub fn next_delay(&mut self) -> Option<Duration> {
        let remaining = self.remaining();
        if remaining.is_some_and(|left| left.is_zero()) {
            return None;
        }
        let sample = if self.config.jitter > 0.0 { fastrand::f64() } else { 0.0 };
        let delay = self.config.delay(self.attempt, sample);
        self.attempt = self.attempt.saturating_add(1);
        Some(remaining.map_or(delay, |left| delay.min(left)))
    }

    /// Starts over: the next delay is the first one again, and `max_elapsed` counts from now.
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.started = self.clock.now();
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    /// [`Backoff::next_delay`].
    fn next(&mut self) -> Option<Duration> {
        self.next_delay()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::ManualClock;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn with(change: impl FnOnce(&mut BackoffConfig)) -> BackoffConfig {
        let mut config = BackoffConfig::default();
        change(&mut config);
        config
    }

    fn deterministic() -> BackoffConfig {
        with(|c| c.jitter = 0.0)
    }

    #[test]
    fn the_default_configuration_is_valid_and_doubles_from_100_ms_to_5_s() {
        let config = BackoffConfig::default();

        assert_eq!(config.validate(), Ok(()));
        assert_eq!((config.initial, config.max, config.multiplier), (ms(100), ms(5000), 2.0));
    }

    #[test]
    fn config_validation_rejects_nonsense() {
        let cases = [
            (with(|c| c.initial = Duration::ZERO), BackoffConfigError::ZeroInitial),
            (with(|c| c.max = ms(50)), BackoffConfigError::MaxBelowInitial { initial: ms(100), max: ms(50) }),
            (with(|c| c.multiplier = 0.5), BackoffConfigError::InvalidMultiplier(0.5)),
            (with(|c| c.multiplier = f64::INFINITY), BackoffConfigError::InvalidMultiplier(f64::INFINITY)),
            (with(|c| c.jitter = -0.1), BackoffConfigError::InvalidJitter(-0.1)),
            (with(|c| c.jitter = 1.5), BackoffConfigError::InvalidJitter(1.5)),
            (with(|c| c.max_elapsed = Some(Duration::ZERO)), BackoffConfigError::ZeroMaxElapsed),
        ];
        for (config, expected) in cases {
            assert_eq!(config.validate(), Err(expected.clone()), "{config:?}");
            assert_eq!(Backoff::new(config).err(), Some(expected));
        }
    }

    #[test]
    fn config_validation_rejects_a_multiplier_or_jitter_that_is_not_a_number() {
        assert!(matches!(
            with(|c| c.multiplier = f64::NAN).validate(),
            Err(BackoffConfigError::InvalidMultiplier(_))
        ));
        assert!(matches!(
            with(|c| c.jitter = f64::NAN).validate(),
            Err(BackoffConfigError::InvalidJitter(_))
        ));
    }

    #[test]
    fn config_validation_accepts_the_edges_of_every_range() {
        let edges = with(|c| {
            c.max = c.initial;
            c.multiplier = 1.0;
            c.jitter = 1.0;
        });

        assert_eq!(edges.validate(), Ok(()));
        assert_eq!(with(|c| c.jitter = 0.0).validate(), Ok(()));
    }

    #[test]
    fn without_jitter_the_delays_double_up_to_the_ceiling_and_stay_there() {
        let backoff = Backoff::new(deterministic()).unwrap();

        let delays: Vec<_> = backoff.take(9).collect();

        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000].map(ms));
    }

    #[test]
    fn a_multiplier_of_one_keeps_the_delay_constant() {
        let backoff = Backoff::new(with(|c| {
            c.multiplier = 1.0;
            c.jitter = 0.0;
        }))
        .unwrap();

        assert_eq!(backoff.take(4).collect::<Vec<_>>(), [ms(100); 4]);
    }

    #[test]
    fn a_fractional_multiplier_grows_the_delay_by_that_factor() {
        let config = with(|c| {
            c.initial = ms(1000);
            c.multiplier = 1.5;
            c.max = ms(60_000);
        });

        assert_eq!([0, 1, 2].map(|n| config.base_delay(n)), [ms(1000), ms(1500), ms(2250)]);
    }

    #[test]
    fn jitter_shortens_a_delay_by_at_most_its_share() {
        let config = BackoffConfig { jitter: 0.5, ..deterministic() };

        assert_eq!(config.delay(3, 0.0), ms(800));
        assert_eq!(config.delay(3, 0.5), ms(600));
        assert_eq!(config.delay(3, 1.0), ms(400));
        // Out-of-range samples are clamped rather than stretching the delay.
        assert_eq!(config.delay(3, -1.0), ms(800));
        assert_eq!(config.delay(3, 7.0), ms(400));
        assert_eq!(config.delay(3, f64::NAN), ms(800));
    }

    #[test]
    fn jittered_delays_stay_between_half_and_all_of_the_base_delay() {
        let config = BackoffConfig::default();
        let mut backoff = Backoff::new(config.clone()).unwrap();

        for attempt in 0..40 {
            let delay = backoff.next_delay().unwrap();
            let base = config.base_delay(attempt);
            assert!(delay <= base && delay >= base / 2, "attempt {attempt}: {delay:?} vs {base:?}");
        }
    }

    #[test]
    fn reset_starts_the_schedule_over() {
        let mut backoff = Backoff::new(deterministic()).unwrap();
        assert_eq!(backoff.by_ref().take(5).collect::<Vec<_>>(), [100, 200, 400, 800, 1600].map(ms));

        backoff.reset();

        assert_eq!(backoff.next_delay(), Some(ms(100)));
    }

    #[test]
    fn very_many_attempts_neither_overflow_nor_pass_the_ceiling() {
        let config = deterministic();

        assert_eq!(config.base_delay(u32::MAX), ms(5000));
        assert_eq!(with(|c| c.max = Duration::MAX).base_delay(u32::MAX), Duration::MAX);
    }

    #[test]
    fn without_a_time_limit_the_schedule_never_gives_up() {
        let clock = ManualClock::new();
        let mut backoff = Backoff::new(deterministic()).unwrap().with_clock(clock.clone());

        clock.advance(Duration::from_secs(365 * 24 * 3600));

        assert_eq!(backoff.remaining(), None);
        assert_eq!(backoff.next_delay(), Some(ms(100)));
    }

    #[test]
    fn max_elapsed_cuts_the_last_delay_short_and_then_gives_up() {
        let clock = ManualClock::new();
        let config = BackoffConfig { max_elapsed: Some(ms(1000)), ..deterministic() };
        let mut backoff = Backoff::new(config).unwrap().with_clock(clock.clone());

        // The caller sleeps each delay on the clock, so time moves by as much.
        let mut slept = Vec::new();
        while let Some(delay) = backoff.next_delay() {
            slept.push(delay);
            clock.advance(delay);
        }

        assert_eq!(slept, [100, 200, 400, 300].map(ms));
        assert_eq!(backoff.remaining(), Some(Duration::ZERO));
    }

    #[test]
    fn max_elapsed_counts_time_spent_in_the_attempts_too() {
        let clock = ManualClock::new();
        let config = BackoffConfig { max_elapsed: Some(ms(1000)), ..deterministic() };
        let mut backoff = Backoff::new(config).unwrap().with_clock(clock.clone());

        clock.advance(ms(950)); // one slow attempt

        assert_eq!(backoff.next_delay(), Some(ms(50)));
        clock.advance(ms(50));
        assert_eq!(backoff.next_delay(), None);
    }

    #[test]
    fn reset_restarts_the_max_elapsed_window() {
        let clock = ManualClock::new();
        let config = BackoffConfig { max_elapsed: Some(ms(1000)), ..deterministic() };
        let mut backoff = Backoff::new(config).unwrap().with_clock(clock.clone());
        clock.advance(ms(1000));
        assert_eq!(backoff.next_delay(), None);

        backoff.reset();

        assert_eq!(backoff.remaining(), Some(ms(1000)));
        assert_eq!(backoff.next_delay(), Some(ms(100)));
    }

    #[test]
    fn an_absolute_deadline_is_kept_across_resets_and_the_earlier_limit_wins() {
        let clock = ManualClock::new();
        let config = BackoffConfig { max_elapsed: Some(ms(1000)), ..deterministic() };
        let deadline = clock.now() + ms(250);
        let mut backoff = Backoff::new(config).unwrap().with_clock(clock.clone()).give_up_at(deadline);

        assert_eq!(backoff.deadline(), Some(deadline));
        assert_eq!(backoff.next_delay(), Some(ms(100)));
        clock.advance(ms(100));
        backoff.reset();
        assert_eq!(backoff.next_delay(), Some(ms(100)));
        clock.advance(ms(100));
        assert_eq!(backoff.next_delay(), Some(ms(50)));
        clock.advance(ms(50));

        assert_eq!(backoff.next_delay(), None);
    }

    #[test]
    fn a_deadline_already_passed_gives_up_before_any_retry() {
        let clock = ManualClock::new();
        let deadline = clock.now();
        clock.advance(ms(1));

        let mut backoff = Backoff::default().with_clock(clock).give_up_at(deadline);

        assert_eq!(backoff.remaining(), Some(Duration::ZERO));
        assert_eq!(backoff.next_delay(), None);
    }
}
