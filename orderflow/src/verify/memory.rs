//! Resident memory of every process of a run (service instances and NATS nodes), sampled before
//! each fault and when the load ends, so that a long run shows whether anything grows.

use std::collections::BTreeMap;

use serde::Serialize;

/// One process's memory over the run: the longest-lived process of an instance or node (a kill
/// starts a new one).
#[derive(Clone, Debug, Serialize)]
pub struct MemoryRow {
    /// `inventory-1`, `nats-2`.
    pub process: String,
    /// Its pid.
    pub pid: u32,
    /// Seconds after the load started of the first sample counted: the second one this process
    /// gave when it gave three or more (the first may predate its warm-up).
    pub first_at_s: f64,
    /// RSS then, MB.
    pub first_rss_mb: f64,
    /// Seconds after the load started of its last sample.
    pub last_at_s: f64,
    /// RSS then, MB.
    pub last_rss_mb: f64,
}

/// Samples by process name and pid.
#[derive(Debug, Default)]
pub(super) struct MemoryLog {
    samples: BTreeMap<(String, u32), Vec<(f64, u64)>>,
}

impl MemoryLog {
    /// Records `pid`'s resident memory now (nothing if it is gone).
    pub(super) fn sample(&mut self, name: &str, pid: Option<u32>, at_s: f64) {
        let Some(pid) = pid else { return };
        let Some(rss) = crate::load::proc_status_bytes(&format!("/proc/{pid}/status"), "VmRSS:") else {
            return;
        };
        self.samples.entry((name.to_owned(), pid)).or_default().push((at_s, rss));
    }

    /// For each process name, its longest-sampled pid with at least two samples.
    pub(super) fn rows(&self) -> Vec<MemoryRow> {
        let mut best: BTreeMap<&str, MemoryRow> = BTreeMap::new();
        for ((name, pid), samples) in &self.samples {
            let counted = if samples.len() >= 3 { &samples[1..] } else { &samples[..] };
            let (Some(first), Some(last)) = (counted.first(), counted.last()) else { continue };
            if counted.len() < 2 {
                continue;
            }
            let row = MemoryRow {
                process: name.clone(),
                pid: *pid,
                first_at_s: first.0,
                first_rss_mb: first.1 as f64 / 1e6,
                last_at_s: last.0,
                last_rss_mb: last.1 as f64 / 1e6,
            };
            let span = |r: &MemoryRow| r.last_at_s - r.first_at_s;
            if best.get(name.as_str()).is_none_or(|b| span(&row) > span(b)) {
                best.insert(name, row);
            }
        }
        best.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_process_is_shown_by_its_longest_lived_pid_after_its_first_sample() {
        let mut log = MemoryLog::default();
        log.samples.insert(
            ("inventory-1".into(), 10),
            vec![(0.0, 10_000_000), (45.0, 20_000_000), (90.0, 21_000_000)],
        );
        log.samples.insert(("inventory-1".into(), 11), vec![(135.0, 9_000_000), (180.0, 19_000_000)]);
        log.samples.insert(("nats-1".into(), 5), vec![(0.0, 30_000_000)]);
        let rows = log.rows();
        assert_eq!(rows.len(), 1, "{rows:?}");
        let row = &rows[0];
        assert_eq!((row.process.as_str(), row.pid), ("inventory-1", 10));
        assert_eq!((row.first_at_s, row.last_at_s), (45.0, 90.0));
        assert!((row.first_rss_mb - 20.0).abs() < 1e-9 && (row.last_rss_mb - 21.0).abs() < 1e-9);
    }
}
