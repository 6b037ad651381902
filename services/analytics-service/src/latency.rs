//! Saga latency as an HDR histogram with two significant figures: each order's created →
//! terminal time is stored as the histogram's representative value for it (at most 1 % off),
//! counted per minute, and percentiles are read back from those counts.

use std::sync::LazyLock;

use hdrhistogram::Histogram;

/// Longest latency kept apart from the rest: a day (anything longer counts as a day).
const MAX_MS: u64 = 24 * 60 * 60 * 1000;

/// Significant figures of the histogram.
const SIGFIG: u8 = 2;

/// The layout every value is quantized with (no counts are recorded in it).
static LAYOUT: LazyLock<Option<Histogram<u64>>> =
    LazyLock::new(|| Histogram::new_with_bounds(1, MAX_MS, SIGFIG).ok());

/// The stored bucket of a latency of `ms` milliseconds (negative: clock skew between services,
/// counted as 0).
pub fn bucket(ms: i64) -> i64 {
    let ms = u64::try_from(ms).unwrap_or(0).min(MAX_MS);
    let Some(layout) = LAYOUT.as_ref() else { return i64::try_from(ms).unwrap_or(i64::MAX) };
    i64::try_from(layout.median_equivalent(ms)).unwrap_or(i64::MAX)
}

/// Percentiles read from stored `(bucket, count)` pairs.
#[derive(Debug)]
pub struct Percentiles {
    histogram: Option<Histogram<u64>>,
}

impl Percentiles {
    /// The histogram of `counts`.
    pub fn from_counts(counts: impl IntoIterator<Item = (i64, i64)>) -> Self {
        let mut histogram = Histogram::new_with_bounds(1, MAX_MS, SIGFIG).ok();
        if let Some(h) = histogram.as_mut() {
            for (bucket, n) in counts {
                let value = u64::try_from(bucket).unwrap_or(0).clamp(1, MAX_MS);
                // In bounds by the clamp, so recording cannot fail.
                let _ = h.record_n(value, u64::try_from(n).unwrap_or(0));
            }
        }
        Self { histogram }
    }

    /// The latency at `quantile` (0.5 for the median), `None` without any.
    pub fn at(&self, quantile: f64) -> Option<u64> {
        let h = self.histogram.as_ref().filter(|h| !h.is_empty())?;
        Some(h.value_at_quantile(quantile))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_within_one_percent_and_clamped() {
        for ms in [1, 7, 99, 123, 4_567, 89_012, 3_600_000] {
            let b = bucket(ms);
            let err = (b - ms).abs() as f64 / ms as f64;
            assert!(err <= 0.01, "{ms} → {b}");
        }
        assert_eq!(bucket(-5), bucket(0));
        assert_eq!(bucket(i64::MAX), bucket(MAX_MS as i64));
    }

    #[test]
    fn percentiles_come_back_from_counts() {
        let counts = (1..=100).map(|ms| (bucket(ms), 1));
        let p = Percentiles::from_counts(counts);
        assert_eq!(p.at(0.5), Some(50));
        assert_eq!(p.at(0.99), Some(99));
        assert_eq!(Percentiles::from_counts([]).at(0.5), None);
    }
}
