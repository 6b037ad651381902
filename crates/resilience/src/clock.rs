//! Time as a parameter: the breaker and the backoff ask a [`Clock`] for "now" (and callers sleep
//! on it), so tests drive them with a [`ManualClock`] instead of sleeping.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// A boxed, `Send` future, as returned by [`Clock::sleep_until`].
pub(crate) type BoxSleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A source of monotonic time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant. Must never go backwards.
    fn now(&self) -> Instant;

    /// Completes once [`Clock::now`] has reached `deadline`. The default uses the tokio timer,
    /// so it needs a tokio runtime; clocks that do not follow real time override it.
    fn sleep_until(&self, deadline: Instant) -> BoxSleep<'_> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    /// Completes once `duration` has passed on this clock; never, if that is further away than
    /// an [`Instant`] can count.
    fn sleep(&self, duration: Duration) -> BoxSleep<'_> {
        match self.now().checked_add(duration) {
            Some(at) => self.sleep_until(at),
            None => Box::pin(std::future::pending()),
        }
    }
}

/// Real monotonic time ([`Instant::now`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to; clones share the same time.
///
/// [`Clock::sleep_until`] on it completes when [`ManualClock::advance`] reaches the deadline, so
/// async code waiting on the breaker can be tested without real sleeps.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<watch::Sender<Instant>>,
}

impl ManualClock {
    /// A clock frozen at the current real instant.
    pub fn new() -> Self {
        Self { now: Arc::new(watch::Sender::new(Instant::now())) }
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|now| *now += by);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxSleep<'_> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives in `self`, which outlives this future, so `wait_for` cannot fail.
            let _ = rx.wait_for(|now| *now >= deadline).await;
        })
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Instant {
        (**self).now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxSleep<'_> {
        (**self).sleep_until(deadline)
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll, Waker};

    use super::*;

    #[test]
    fn a_sleep_on_a_manual_clock_ends_when_the_clock_has_moved_that_far() {
        let clock = ManualClock::new();
        let mut sleep = clock.sleep(Duration::from_secs(5));
        let mut cx = Context::from_waker(Waker::noop());

        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        clock.advance(Duration::from_secs(4));
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        clock.advance(Duration::from_secs(1));
        assert_eq!(sleep.as_mut().poll(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn a_sleep_longer_than_the_clock_can_count_never_ends() {
        let clock = ManualClock::new();
        let mut sleep = clock.sleep(Duration::MAX);
        let mut cx = Context::from_waker(Waker::noop());
        clock.advance(Duration::from_secs(3600));
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
    }
}
