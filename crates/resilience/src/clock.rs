//! Time as a parameter: the breaker and the backoff ask a [`Clock`] for "now" (and callers sleep
//! on it), so tests drive them with a [`ManualClock`] instead of sleeping.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// A boxed, `Send` future, as returned by [`Clock::sleep_until`].
pub type BoxSleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A source of monotonic time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant. Must never go backwards.
    fn now(&self) -> Instant;

    /// Completes once [`Clock::now`] has reached `deadline`. The default uses the tokio timer,
    /// so it needs a tokio runtime; clocks that do not follow real time override it.
    fn sleep_until(&self, deadline: Instant) -> BoxSleep<'_> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
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
