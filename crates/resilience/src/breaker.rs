//! The circuit breaker: closed → open → half-open → closed, behind one mutex.
//!
//! Every decision happens inside a short critical section that never awaits; time comes from the
//! injected [`Clock`], and the open → half-open step is taken lazily whenever the breaker is
//! asked (`try_acquire`, `state`, `snapshot`, …) or by [`CircuitBreaker::wait_until_probe`].

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::config::{BreakerConfig, ConfigError};
use crate::window::{RollingWindow, WindowCounts};

/// Where the breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls flow; outcomes are counted in the rolling window.
    Closed,
    /// Calls are rejected until `open_for` has passed.
    Open,
    /// A bounded number of probe calls may go through to test the dependency.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open` (the serde name).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The value for a state gauge: closed 0, open 1, half-open 2.
    pub const fn gauge_value(self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why [`CircuitBreaker::try_acquire`] refused a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The breaker is open; the first probe is allowed after `retry_after`.
    #[error("circuit breaker is open; next probe in {retry_after:?}")]
    Open {
        /// Time left until the breaker lets a probe through.
        retry_after: Duration,
    },
    /// The breaker is half-open and every probe slot is taken.
    #[error("circuit breaker is half-open and all probe slots are in use")]
    ProbesBusy,
}

/// A point-in-time view of the breaker, for metrics and health output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerSnapshot {
    /// Current state.
    pub state: BreakerState,
    /// Outcomes in the rolling window (only counted while closed).
    pub window: WindowCounts,
    /// How many times the breaker has opened since it was built.
    pub times_opened: u64,
}

/// A thread-safe circuit breaker.
///
/// Clones share one breaker (the state lives behind an `Arc`), so hand a clone to every task that
/// calls the protected dependency.
///
/// The caller classifies outcomes: take a [`Permit`] with [`try_acquire`](Self::try_acquire),
/// make the call, then report [`Permit::success`] or [`Permit::failure`]. Only failures that say
/// something about the dependency's health (timeouts, 5xx, connection errors) should be reported
/// as failures; a business answer such as a declined payment is a success.
///
/// ```no_run
/// use orderflow_resilience::{BreakerConfig, CircuitBreaker};
///
/// # async fn charge() -> Result<(), std::io::Error> { Ok(()) }
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let breaker = CircuitBreaker::new(BreakerConfig::default())?;
///
/// // A consumer pauses while the breaker is open instead of burning deliveries.
/// breaker.wait_until_probe().await;
/// match breaker.try_acquire() {
///     Ok(permit) => match charge().await {
///         Ok(()) => permit.success(),
///         Err(_) => permit.failure(),
///     },
///     Err(rejected) => println!("not calling: {rejected}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    core: Mutex<Core>,
    state_tx: watch::Sender<BreakerState>,
}

#[derive(Debug)]
struct Core {
    state: BreakerState,
    /// Bumped on every transition; permits from an earlier epoch are ignored when they report.
    epoch: u64,
    window: RollingWindow,
    opened_at: Instant,
    probes_in_flight: u32,
    probe_successes: u32,
    times_opened: u64,
}

impl CircuitBreaker {
    /// A closed breaker on real time. Fails when the configuration does not validate.
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, SystemClock)
    }

    /// A closed breaker that reads time from `clock` (tests pass a [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(config: BreakerConfig, clock: impl Clock) -> Result<Self, ConfigError> {
        config.validate()?;
        let now = clock.now();
        let core = Core {
            state: BreakerState::Closed,
            epoch: 0,
            window: RollingWindow::new(now, config.bucket_width(), config.buckets),
            opened_at: now,
            probes_in_flight: 0,
            probe_successes: 0,
            times_opened: 0,
        };
        let (state_tx, _) = watch::channel(BreakerState::Closed);
        Ok(Self {
            shared: Arc::new(Shared { config, clock: Arc::new(clock), core: Mutex::new(core), state_tx }),
        })
    }

    /// Asks to make one call. Closed: always granted. Open: rejected with the time left.
    /// Half-open: granted as a probe while fewer than `half_open_probes` probes are in flight.
    pub fn try_acquire(&self) -> Result<Permit, Rejected> {
        let shared = &self.shared;
        let now = shared.clock.now();
        let mut core = shared.lock();
        shared.refresh(&mut core, now);
        match core.state {
            BreakerState::Closed => Ok(self.permit(core.epoch, false)),
            BreakerState::Open => {
                Err(Rejected::Open { retry_after: shared.probe_at(&core).saturating_duration_since(now) })
            }
            BreakerState::HalfOpen if core.probes_in_flight < shared.config.half_open_probes => {
                core.probes_in_flight += 1;
                Ok(self.permit(core.epoch, true))
            }
            BreakerState::HalfOpen => Err(Rejected::ProbesBusy),
        }
    }

    /// The current state (taking the open → half-open step if `open_for` has passed).
    pub fn state(&self) -> BreakerState {
        let now = self.shared.clock.now();
        let mut core = self.shared.lock();
        self.shared.refresh(&mut core, now);
        core.state
    }

    /// The instant the breaker turns half-open; `None` unless it is open.
    pub(crate) fn next_probe_at(&self) -> Option<Instant> {
        let now = self.shared.clock.now();
        let mut core = self.shared.lock();
        self.shared.refresh(&mut core, now);
        (core.state == BreakerState::Open).then(|| self.shared.probe_at(&core))
    }

    /// A receiver of every state change. Its value is the state as of the last transition: the
    /// open → half-open step is taken lazily, so a watcher that only waits on the channel while
    /// open should also run [`wait_until_probe`](Self::wait_until_probe), which takes that step
    /// on time and so publishes `HalfOpen`.
    pub fn subscribe(&self) -> watch::Receiver<BreakerState> {
        self.shared.state_tx.subscribe()
    }

    /// Completes as soon as the breaker is not open: at once when closed or half-open, otherwise
    /// when `open_for` has passed (the breaker then turns half-open and subscribers see it).
    /// Holds no lock while waiting; cancel-safe.
    ///
    /// Half-open with every probe slot taken, [`try_acquire`](Self::try_acquire) still answers
    /// [`Rejected::ProbesBusy`]; wait for the probes' verdict with
    /// [`subscribe`](Self::subscribe)`().changed()` rather than spinning.
    pub async fn wait_until_probe(&self) {
        while let Some(at) = self.next_probe_at() {
            self.shared.clock.sleep_until(at).await;
        }
    }

    /// State, window counts and counters, read under one lock.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let now = self.shared.clock.now();
        let mut core = self.shared.lock();
        self.shared.refresh(&mut core, now);
        BreakerSnapshot {
            state: core.state,
            window: core.window.counts(now),
            times_opened: core.times_opened,
        }
    }

    fn permit(&self, epoch: u64, probe: bool) -> Permit {
        Permit { shared: Arc::clone(&self.shared), epoch, probe, settled: false }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Core> {
        // Nothing inside the critical sections panics; if something ever did, the counters are
        // still consistent enough to keep protecting the dependency.
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn probe_at(&self, core: &Core) -> Instant {
        core.opened_at + self.config.open_for
    }

    /// Takes the time-driven open → half-open step.
    fn refresh(&self, core: &mut Core, now: Instant) {
        if core.state == BreakerState::Open && now >= self.probe_at(core) {
            self.transition(core, BreakerState::HalfOpen, now);
        }
    }

    fn transition(&self, core: &mut Core, to: BreakerState, now: Instant) {
        core.state = to;
        core.epoch += 1;
        core.probes_in_flight = 0;
        core.probe_successes = 0;
        match to {
            BreakerState::Open => {
                core.opened_at = now;
                core.times_opened += 1;
            }
            // A closed breaker starts from a clean window: the failures that opened it are old news.
            BreakerState::Closed => core.window.reset(),
            BreakerState::HalfOpen => {}
        }
        // Sent under the lock so that subscribers see transitions in the order they happened.
        self.state_tx.send_replace(to);
    }

    /// Records a permit's outcome; `None` means the permit was dropped without a verdict.
    fn settle(&self, epoch: u64, probe: bool, outcome: Option<bool>) {
        let now = self.clock.now();
        let mut core = self.lock();
        if core.epoch != epoch {
            // Issued before the last transition: its outcome describes a state that is gone.
            return;
        }
        match (core.state, probe) {
            (BreakerState::Closed, false) => {
                let Some(success) = outcome else { return };
                core.window.record(now, success);
                if !success && self.should_open(core.window.counts(now)) {
                    self.transition(&mut core, BreakerState::Open, now);
                }
            }
            (BreakerState::HalfOpen, true) => {
                core.probes_in_flight = core.probes_in_flight.saturating_sub(1);
                match outcome {
                    Some(true) => {
                        core.probe_successes += 1;
                        if core.probe_successes >= self.config.half_open_probes {
                            self.transition(&mut core, BreakerState::Closed, now);
                        }
                    }
                    Some(false) => self.transition(&mut core, BreakerState::Open, now),
                    None => {}
                }
            }
            // No permit is issued while open, and the epoch pins a permit to its state.
            _ => {}
        }
    }

    fn should_open(&self, counts: WindowCounts) -> bool {
        let calls = counts.calls();
        calls >= u64::from(self.config.min_calls)
            && counts.failures as f64 >= self.config.failure_rate * calls as f64
    }
}

/// Leave to make one call through the breaker; report how it went.
///
/// A permit dropped without [`success`](Self::success) or [`failure`](Self::failure) counts as
/// neither: a cancelled call (shutdown, a caller that gave up) says nothing about the
/// dependency's health. A dropped probe frees its slot so another probe can go. Time-outs are
/// failures and must be reported as such. A permit that reports after the breaker has changed
/// state is ignored.
#[must_use = "report the outcome with success() or failure(); a dropped permit counts as neither"]
#[derive(Debug)]
pub struct Permit {
    shared: Arc<Shared>,
    epoch: u64,
    probe: bool,
    settled: bool,
}

impl Permit {
    /// The call succeeded.
    pub fn success(mut self) {
        self.settle(Some(true));
    }

    /// The call failed in a way that counts against the dependency.
    pub fn failure(mut self) {
        self.settle(Some(false));
    }

    fn settle(&mut self, outcome: Option<bool>) {
        if !self.settled {
            self.settled = true;
            self.shared.settle(self.epoch, self.probe, outcome);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.settle(None);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Barrier;

    use super::*;
    use crate::clock::ManualClock;

    const WINDOW: Duration = Duration::from_secs(10);
    const OPEN_FOR: Duration = Duration::from_secs(2);

    fn config() -> BreakerConfig {
        BreakerConfig {
            window: WINDOW,
            buckets: 10,
            min_calls: 4,
            failure_rate: 0.5,
            open_for: OPEN_FOR,
            half_open_probes: 1,
        }
    }

    fn breaker(config: BreakerConfig) -> (CircuitBreaker, ManualClock) {
        let clock = ManualClock::new();
        (CircuitBreaker::with_clock(config, clock.clone()).unwrap(), clock)
    }

    fn succeed(breaker: &CircuitBreaker, times: usize) {
        for _ in 0..times {
            breaker.try_acquire().unwrap().success();
        }
    }

    fn fail(breaker: &CircuitBreaker, times: usize) {
        for _ in 0..times {
            breaker.try_acquire().unwrap().failure();
        }
    }

    /// Time left until a probe is allowed; `None` unless the breaker is open.
    fn retry_after(breaker: &CircuitBreaker) -> Option<Duration> {
        let now = breaker.shared.clock.now();
        breaker.next_probe_at().map(|at| at.saturating_duration_since(now))
    }

    fn open(breaker: &CircuitBreaker) {
        fail(breaker, breaker.shared.config.min_calls as usize);
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn a_new_breaker_is_closed_and_lets_calls_through() {
        let (breaker, _) = breaker(config());

        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(!breaker.try_acquire().unwrap().probe);
        assert_eq!(retry_after(&breaker), None);
    }

    #[test]
    fn opens_at_the_failure_rate() {
        let (breaker, _) = breaker(config());
        succeed(&breaker, 2);
        fail(&breaker, 1);
        assert_eq!(breaker.state(), BreakerState::Closed, "1 of 3 failed, below min_calls anyway");

        fail(&breaker, 1);

        assert_eq!(breaker.state(), BreakerState::Open, "2 of 4 failed = 50 %");
        assert_eq!(breaker.try_acquire().unwrap_err(), Rejected::Open { retry_after: OPEN_FOR });
        assert_eq!(retry_after(&breaker), Some(OPEN_FOR));
    }

    #[test]
    fn stays_closed_while_the_failure_rate_is_below_the_threshold() {
        let (breaker, _) = breaker(config());
        succeed(&breaker, 6);

        fail(&breaker, 5);

        assert_eq!(breaker.state(), BreakerState::Closed, "5 of 11 failed < 50 %");
        assert_eq!(breaker.snapshot().window, WindowCounts { successes: 6, failures: 5 });
    }

    #[test]
    fn does_not_open_below_min_calls() {
        let (breaker, _) = breaker(BreakerConfig { min_calls: 5, ..config() });

        fail(&breaker, 4);
        assert_eq!(breaker.state(), BreakerState::Closed);

        fail(&breaker, 1);
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn failures_older_than_the_window_age_out() {
        let (breaker, clock) = breaker(config());
        fail(&breaker, 3);

        clock.advance(WINDOW);
        fail(&breaker, 1);

        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.snapshot().window, WindowCounts { successes: 0, failures: 1 });
    }

    #[test]
    fn failures_spread_over_the_window_still_open_it() {
        let (breaker, clock) = breaker(config());
        fail(&breaker, 1);
        for _ in 0..3 {
            clock.advance(Duration::from_secs(3));
            fail(&breaker, 1);
        }

        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn turns_half_open_after_open_for_with_the_manual_clock() {
        let (breaker, clock) = breaker(config());
        open(&breaker);

        clock.advance(OPEN_FOR - Duration::from_millis(1));
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(retry_after(&breaker), Some(Duration::from_millis(1)));

        clock.advance(Duration::from_millis(1));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert_eq!(retry_after(&breaker), None);
        assert_eq!(breaker.next_probe_at(), None);
    }

    #[test]
    fn a_probe_success_closes_the_breaker() {
        let (breaker, clock) = breaker(config());
        open(&breaker);
        clock.advance(OPEN_FOR);

        let probe = breaker.try_acquire().unwrap();
        assert!(probe.probe);
        probe.success();

        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.snapshot().window.calls(), 0, "a closed breaker starts from a clean window");
    }

    #[test]
    fn a_probe_failure_reopens_the_breaker_for_another_open_for() {
        let (breaker, clock) = breaker(config());
        open(&breaker);
        clock.advance(OPEN_FOR);

        breaker.try_acquire().unwrap().failure();

        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(retry_after(&breaker), Some(OPEN_FOR));
        assert_eq!(breaker.snapshot().times_opened, 2);
    }

    #[test]
    fn closing_takes_as_many_successful_probes_as_configured() {
        let (breaker, clock) = breaker(BreakerConfig { half_open_probes: 3, ..config() });
        open(&breaker);
        clock.advance(OPEN_FOR);

        succeed(&breaker, 2);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);

        succeed(&breaker, 1);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn only_the_configured_number_of_probes_are_allowed_at_once_in_half_open() {
        let (breaker, clock) = breaker(BreakerConfig { half_open_probes: 2, ..config() });
        open(&breaker);
        clock.advance(OPEN_FOR);

        let first = breaker.try_acquire().unwrap();
        let second = breaker.try_acquire().unwrap();
        assert_eq!(breaker.try_acquire().unwrap_err(), Rejected::ProbesBusy);

        drop(first);
        let third = breaker.try_acquire().expect("a dropped probe frees its slot");
        assert_eq!(breaker.try_acquire().unwrap_err(), Rejected::ProbesBusy);

        second.success();
        third.success();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn a_dropped_permit_counts_as_neither_success_nor_failure() {
        let (breaker, _) = breaker(config());

        for _ in 0..10 {
            drop(breaker.try_acquire().unwrap());
        }

        assert_eq!(breaker.snapshot().window.calls(), 0);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn a_permit_from_before_a_transition_is_ignored() {
        let (breaker, clock) = breaker(config());
        let slow_call = breaker.try_acquire().unwrap();
        open(&breaker);
        clock.advance(OPEN_FOR);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);

        slow_call.success();

        assert_eq!(breaker.state(), BreakerState::HalfOpen, "only a probe may close the breaker");
    }

    #[test]
    fn concurrent_use_from_many_threads_keeps_counts_consistent() {
        // A failure rate of 1 with these numbers never opens: every thread's successes keep it
        // below 100 %, so every outcome must land in the window.
        let (breaker, _) = breaker(BreakerConfig { failure_rate: 1.0, ..config() });
        let threads: u64 = 8;
        let per_thread: u64 = 1_000;

        std::thread::scope(|scope| {
            for t in 0..threads {
                let breaker = breaker.clone();
                scope.spawn(move || {
                    for i in 0..per_thread {
                        let permit = breaker.try_acquire().unwrap();
                        if (t + i) % 4 == 0 { permit.failure() } else { permit.success() }
                    }
                });
            }
        });

        let snapshot = breaker.snapshot();
        assert_eq!(snapshot.state, BreakerState::Closed);
        assert_eq!(snapshot.window.calls(), threads * per_thread);
        assert_eq!(snapshot.window.failures, threads * per_thread / 4);
    }

    #[test]
    fn racing_threads_get_no_more_probes_than_allowed() {
        let (breaker, clock) = breaker(BreakerConfig { half_open_probes: 3, ..config() });
        open(&breaker);
        clock.advance(OPEN_FOR);
        let threads = 16;
        let barrier = Barrier::new(threads);

        let permits: Vec<Permit> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        breaker.try_acquire().ok()
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().unwrap()).collect()
        });

        assert_eq!(permits.len(), 3);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn watch_subscribers_see_every_transition() {
        let (breaker, clock) = breaker(config());
        let mut rx = breaker.subscribe();
        assert_eq!(*rx.borrow_and_update(), BreakerState::Closed);

        open(&breaker);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), BreakerState::Open);

        clock.advance(OPEN_FOR);
        let probe = breaker.try_acquire().unwrap();
        assert_eq!(*rx.borrow_and_update(), BreakerState::HalfOpen);

        probe.failure();
        assert_eq!(*rx.borrow_and_update(), BreakerState::Open);

        clock.advance(OPEN_FOR);
        breaker.try_acquire().unwrap().success();
        assert_eq!(*rx.borrow_and_update(), BreakerState::Closed);
        assert!(!rx.has_changed().unwrap());
    }

    #[tokio::test]
    async fn wait_until_probe_returns_once_open_for_has_passed_and_publishes_half_open() {
        let (breaker, clock) = breaker(config());
        let mut rx = breaker.subscribe();
        open(&breaker);
        let waiter = tokio::spawn({
            let breaker = breaker.clone();
            async move { breaker.wait_until_probe().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());

        clock.advance(OPEN_FOR);
        waiter.await.unwrap();

        assert_eq!(*rx.borrow_and_update(), BreakerState::HalfOpen);
    }

    #[tokio::test]
    async fn wait_until_probe_returns_at_once_when_closed() {
        let (breaker, _) = breaker(config());

        breaker.wait_until_probe().await;

        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn states_have_stable_names_and_gauge_values() {
        let states = [BreakerState::Closed, BreakerState::Open, BreakerState::HalfOpen];

        let names: Vec<_> = states.iter().map(|s| serde_json::to_string(s).unwrap()).collect();
        assert_eq!(names, ["\"closed\"", "\"open\"", "\"half_open\""]);
        assert_eq!(states.map(BreakerState::as_str), ["closed", "open", "half_open"]);
        assert_eq!(states.map(BreakerState::gauge_value), [0, 1, 2]);
        assert_eq!(BreakerState::HalfOpen.to_string(), "half_open");
    }

    #[test]
    fn an_invalid_configuration_builds_no_breaker() {
        let result = CircuitBreaker::new(BreakerConfig { failure_rate: 2.0, ..config() });

        assert_eq!(result.unwrap_err(), ConfigError::InvalidFailureRate(2.0));
    }
}
