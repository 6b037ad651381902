//! The redelivery schedule: one list of delays shared by the consumer's server-side `BackOff`
//! and the runtime's naks, so a nak'd message and a timed-out one wait the same.

use std::time::Duration;

/// Delays between deliveries: entry `n` is the wait before delivery `n + 2`.
///
/// NATS requires `max_deliver > len(backoff)`, and sets the consumer's ack wait to the first
/// entry; the runtime sends progress acks while a handler runs, so a slow handler is not
/// redelivered just because it is slower than that first delay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedeliverySchedule(Vec<Duration>);

/// Why a schedule was rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// No delays.
    #[error("a redelivery schedule needs at least one delay")]
    Empty,
    /// A zero delay would redeliver in a busy loop.
    #[error("redelivery delays must be positive")]
    ZeroDelay,
    /// NATS rejects a BackOff list as long as max_deliver.
    #[error("{len} delays need max_deliver > {len}, got {max_deliver}")]
    TooLong {
        /// Number of delays.
        len: usize,
        /// The consumer's max_deliver.
        max_deliver: i64,
    },
}

impl RedeliverySchedule {
    /// Validates a schedule for a consumer with the given `max_deliver`.
    pub fn new(delays: Vec<Duration>, max_deliver: i64) -> Result<Self, ScheduleError> {
        if delays.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if delays.iter().any(Duration::is_zero) {
            return Err(ScheduleError::ZeroDelay);
        }
        if i64::try_from(delays.len()).map_or(true, |len| len >= max_deliver) {
            return Err(ScheduleError::TooLong { len: delays.len(), max_deliver });
        }
        Ok(Self(delays))
    }

    /// The production default for `max_deliver = 5`: 2 s, 10 s, 30 s, 60 s.
    pub(crate) fn standard() -> Self {
        Self([2, 10, 30, 60].map(Duration::from_secs).to_vec())
    }

    /// The delays.
    pub fn delays(&self) -> &[Duration] {
        &self.0
    }

    /// The first delay, which NATS also uses as the consumer's ack wait.
    pub fn ack_wait(&self) -> Duration {
        self.0[0]
    }

    /// The delay before the next delivery after delivery number `delivered` (1-based) failed.
    pub fn delay_after(&self, delivered: i64) -> Duration {
        let idx = usize::try_from(delivered.saturating_sub(1)).unwrap_or(0);
        self.0[idx.min(self.0.len() - 1)]
    }
}

impl Default for RedeliverySchedule {
    fn default() -> Self {
        Self::standard()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_after_walks_the_schedule_and_stays_on_the_last_entry() {
        let s = RedeliverySchedule::standard();
        assert_eq!(s.delay_after(1), Duration::from_secs(2));
        assert_eq!(s.delay_after(2), Duration::from_secs(10));
        assert_eq!(s.delay_after(4), Duration::from_secs(60));
        assert_eq!(s.delay_after(9), Duration::from_secs(60));
        assert_eq!(s.delay_after(0), Duration::from_secs(2));
    }

    #[test]
    fn schedules_nats_would_reject_are_rejected_here() {
        let d = Duration::from_secs(1);
        assert_eq!(RedeliverySchedule::new(vec![], 5), Err(ScheduleError::Empty));
        assert_eq!(RedeliverySchedule::new(vec![Duration::ZERO], 5), Err(ScheduleError::ZeroDelay));
        assert!(matches!(RedeliverySchedule::new(vec![d; 5], 5), Err(ScheduleError::TooLong { .. })));
        assert!(RedeliverySchedule::new(vec![d; 4], 5).is_ok());
    }
}
