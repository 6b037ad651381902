//! The rolling window: call outcomes counted in fixed time buckets, so old outcomes age out a
//! bucket at a time without keeping one entry per call.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Absolute bucket number (time since `origin` / width) this slot currently counts.
    index: u64,
    successes: u64,
    failures: u64,
}

/// Successes and failures seen in the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Calls that succeeded.
    pub(crate) successes: u64,
    /// Calls that failed.
    pub failures: u64,
}

impl WindowCounts {
    /// All calls counted.
    pub(crate) fn calls(&self) -> u64 {
        self.successes + self.failures
    }
}

#[derive(Debug)]
pub(crate) struct RollingWindow {
    origin: Instant,
    width_nanos: u128,
    buckets: Vec<Bucket>,
}

impl RollingWindow {
    pub(crate) fn new(origin: Instant, width: Duration, buckets: u32) -> Self {
        let len = usize::try_from(buckets.max(1)).unwrap_or(1);
        Self { origin, width_nanos: width.as_nanos().max(1), buckets: vec![Bucket::default(); len] }
    }

    fn index_at(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(elapsed / self.width_nanos).unwrap_or(u64::MAX)
    }

    pub(crate) fn record(&mut self, now: Instant, success: bool) {
        let index = self.index_at(now);
        let len = self.buckets.len() as u64;
        let slot = usize::try_from(index % len).unwrap_or(0);
        let bucket = &mut self.buckets[slot];
        if bucket.index != index {
            *bucket = Bucket { index, ..Bucket::default() };
        }
        if success {
            bucket.successes += 1;
        } else {
            bucket.failures += 1;
        }
    }

    pub(crate) fn counts(&self, now: Instant) -> WindowCounts {
        let current = self.index_at(now);
        let len = self.buckets.len() as u64;
        self.buckets.iter().filter(|b| b.index <= current && current - b.index < len).fold(
            WindowCounts::default(),
            |acc, b| WindowCounts {
                successes: acc.successes + b.successes,
                failures: acc.failures + b.failures,
            },
        )
    }

    pub(crate) fn reset(&mut self) {
        self.buckets.fill(Bucket::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_older_than_the_window_are_not_counted() {
        let origin = Instant::now();
        let mut window = RollingWindow::new(origin, Duration::from_millis(100), 10);
        window.record(origin, false);
        window.record(origin + Duration::from_millis(950), true);

        assert_eq!(window.counts(origin + Duration::from_millis(999)).calls(), 2);
        assert_eq!(
            window.counts(origin + Duration::from_secs(1)),
            WindowCounts { successes: 1, failures: 0 }
        );
        assert_eq!(window.counts(origin + Duration::from_secs(2)).calls(), 0);
    }

    #[test]
    fn a_reused_slot_forgets_what_it_counted_a_lap_ago() {
        let origin = Instant::now();
        let mut window = RollingWindow::new(origin, Duration::from_millis(100), 10);
        window.record(origin, false);
        window.record(origin + Duration::from_secs(1), true);

        assert_eq!(
            window.counts(origin + Duration::from_secs(1)),
            WindowCounts { successes: 1, failures: 0 }
        );
    }
}
