//! Latency recording: an HDR histogram in microseconds (1 µs to 1 h, 3 significant digits) and
//! the percentile summary that reports show.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// One latency distribution.
#[derive(Clone, Debug)]
pub struct Latency {
    hist: Option<Histogram<u64>>,
}

const HIGHEST_US: u64 = 3_600_000_000;

impl Latency {
    /// An empty distribution.
    pub fn new() -> Self {
        // The bounds are constants that hdrhistogram accepts; `None` would only mean a bug, and
        // then latencies are simply not recorded rather than the run failing.
        Self { hist: Histogram::new_with_bounds(1, HIGHEST_US, 3).ok() }
    }

    /// Records one sample (clamped to 1 µs ..= 1 h).
    pub fn record(&mut self, d: Duration) {
        if let Some(h) = &mut self.hist {
            let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).clamp(1, HIGHEST_US);
            h.saturating_record(us);
        }
    }

    /// Adds another distribution's samples.
    pub fn merge(&mut self, other: &Latency) {
        if let (Some(h), Some(o)) = (&mut self.hist, &other.hist) {
            let _ = h.add(o);
        }
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.hist.as_ref().map_or(0, Histogram::len)
    }

    /// p50, p90, p99, p99.9, max and mean, in milliseconds.
    pub fn summary(&self) -> Percentiles {
        let Some(h) = self.hist.as_ref().filter(|h| !h.is_empty()) else {
            return Percentiles::default();
        };
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

/// A latency distribution's summary, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_out_in_milliseconds() {
        let mut l = Latency::new();
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        let s = l.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50 - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p99 - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.max - 100.0).abs() < 0.1, "{s:?}");
    }

    #[test]
    fn an_empty_distribution_summarises_to_zeros() {
        assert_eq!(Latency::new().summary(), Percentiles::default());
    }
}
