//! What a verify run found: printed as a table, written as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::faults::Fault;

/// One injected fault and how the system came back.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    /// Position in the schedule.
    pub index: usize,
    /// Seconds after the load started.
    pub at_s: f64,
    /// What was planned.
    pub fault: Fault,
    /// Human description.
    pub description: String,
    /// What it hit: the instance or node (`nats-2 (leader of ORDERS)`), or the gateway.
    pub target: String,
    /// How long the fault lasted, ms.
    pub held_ms: u64,
    /// From healing the fault until a probe order placed after it was terminal, ms; `None` when
    /// it did not recover within the recovery timeout.
    pub recovered_after_ms: Option<u64>,
    /// The probe order and how it ended.
    pub probe: Option<Probe>,
    /// For a duplicate storm: events re-published, how many JetStream dropped as duplicates and
    /// how many it stored again.
    pub detail: Option<String>,
    /// What went wrong while injecting, healing or probing.
    pub error: Option<String>,
    /// Client requests (`POST /orders` of the load) that failed from the injection until the
    /// probe completed.
    pub client_errors: u64,
}

/// Recovery of one kind of fault over a run: what docs/RELIABILITY.md reports.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct KindSummary {
    /// [`Fault::kind`].
    pub kind: String,
    /// Injected.
    pub count: usize,
    /// Of which the system recovered from within the recovery timeout.
    pub recovered: usize,
    /// Fastest recovery, ms.
    pub min_ms: Option<u64>,
    /// Median recovery, ms.
    pub median_ms: Option<u64>,
    /// Slowest recovery, ms.
    pub max_ms: Option<u64>,
    /// Client requests that failed during these faults, in all.
    pub client_errors: u64,
}

/// Groups `faults` by kind, in the order each kind first occurred.
pub fn summarize(faults: &[FaultRecord]) -> Vec<KindSummary> {
    let mut kinds: Vec<String> = Vec::new();
    for f in faults {
        let kind = f.fault.kind();
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds
        .into_iter()
        .map(|kind| {
            let of_kind: Vec<&FaultRecord> = faults.iter().filter(|f| f.fault.kind() == kind).collect();
            let mut times: Vec<u64> = of_kind.iter().filter_map(|f| f.recovered_after_ms).collect();
            times.sort_unstable();
            KindSummary {
                count: of_kind.len(),
                recovered: times.len(),
                min_ms: times.first().copied(),
                median_ms: times.get(times.len() / 2).copied(),
                max_ms: times.last().copied(),
                client_errors: of_kind.iter().map(|f| f.client_errors).sum(),
                kind,
            }
        })
        .collect()
}

/// A probe order placed after a fault was healed.
#[derive(Clone, Debug, Serialize)]
pub struct Probe {
    /// Its id.
    pub order_id: String,
    /// `confirmed` or `cancelled`.
    pub status: String,
}

/// The load that ran during the faults (client's view).
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadSummary {
    /// Orders per second offered.
    pub rate: f64,
    /// Requests sent (new orders).
    pub sent: u64,
    /// Answered 202.
    pub accepted: u64,
    /// Not accepted (mostly while the order service was down or NATS was failing over).
    pub errors: u64,
    /// Errors by kind.
    pub error_kinds: BTreeMap<String, u64>,
    /// Re-sends with the same `Idempotency-Key`.
    pub duplicate_key_resends: u64,
    /// Re-sends that named a different order (must be 0).
    pub duplicate_key_mismatched: u64,
    /// p99 accept → terminal for standard orders, ms (faults included).
    pub p99_confirmed_ms: f64,
}

/// The whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// No violation and no failure.
    pub passed: bool,
    /// The schedule's seed (`--seed` repeats the run).
    pub seed: u64,
    /// Configured load duration, s.
    pub duration_s: f64,
    /// Wall time of the whole run, s.
    pub elapsed_s: f64,
    /// Storage.
    pub database: String,
    /// NATS.
    pub nats: String,
    /// The service instances.
    pub instances: Vec<String>,
    /// The load.
    pub load: LoadSummary,
    /// Recovery probes placed (one per fault), accepted orders too.
    pub probes: usize,
    /// What the invariant checker saw: orders by status and reason, charges, dead letters by
    /// reason, and every violation (naming its order or product).
    #[serde(flatten)]
    pub check: crate::invariants::Report,
    /// Faults injected.
    pub faults_injected: usize,
    /// Each fault.
    pub faults: Vec<FaultRecord>,
    /// Slowest recovery, ms.
    pub max_recovery_ms: Option<u64>,
    /// Recovery by kind of fault.
    pub recovery_by_kind: Vec<KindSummary>,
    /// Seconds from the end of the load until the system was quiet.
    pub quiet_after_s: Option<f64>,
    /// Resident memory of each instance and NATS node over the run (its longest-lived process).
    pub memory: Vec<super::MemoryRow>,
    /// A deliberate corruption applied before the check (`--sabotage`), to show the checker fails.
    pub sabotage: Option<String>,
    /// Other reasons the run failed (no recovery, not quiet, a process that died by itself).
    pub failures: Vec<String>,
    /// Where the logs, databases and NATS stores are.
    pub data_dir: String,
}

impl VerifyReport {
    /// The human-readable report.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "orderflow verify: {} (seed {}, {:.0} s of load at {}/s, {:.0} s in all)",
            if self.passed { "PASSED" } else { "FAILED" },
            self.seed,
            self.duration_s,
            self.load.rate,
            self.elapsed_s
        );
        let _ = writeln!(s, "  NATS        {}", self.nats);
        let _ = writeln!(s, "  storage     {}", self.database);
        let _ = writeln!(s, "  instances   {}", self.instances.join(", "));
        let _ = writeln!(
            s,
            "  load        {} sent, {} accepted, {} not accepted {:?}, {} duplicate-key re-sends ({} mismatched)",
            self.load.sent,
            self.load.accepted,
            self.load.errors,
            self.load.error_kinds,
            self.load.duplicate_key_resends,
            self.load.duplicate_key_mismatched
        );
        let _ = writeln!(
            s,
            "  orders      {} in the database ({} probes): {} confirmed, cancelled {:?}, {} pending",
            self.check.orders, self.probes, self.check.confirmed, self.check.cancelled, self.check.pending
        );
        let _ = writeln!(s, "  charges     {} succeeded", self.check.charges_succeeded);
        let _ = writeln!(s, "  DLQ         {:?}", self.check.dlq);
        if let Some(q) = self.quiet_after_s {
            let _ = writeln!(s, "  quiet       {q:.1} s after the load ended");
        }
        let _ = writeln!(
            s,
            "\n  {:>3} {:>7}  {:<48} {:<28} {:>10} {:>7}",
            "#", "at s", "fault", "target", "recovery", "client errors"
        );
        for f in &self.faults {
            let recovery = f.recovered_after_ms.map_or_else(|| "NONE".to_owned(), |ms| format!("{ms} ms"));
            let _ = writeln!(
                s,
                "  {:>3} {:>7.1}  {:<48} {:<28} {:>10} {:>7}",
                f.index + 1,
                f.at_s,
                f.description,
                f.target,
                recovery,
                f.client_errors
            );
            if let Some(d) = &f.detail {
                let _ = writeln!(s, "  {:>11}  {d}", "");
            }
            if let Some(e) = &f.error {
                let _ = writeln!(s, "  {:>11}  error: {e}", "");
            }
        }
        if !self.recovery_by_kind.is_empty() {
            let ms = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
            let _ = writeln!(
                s,
                "\n  {:<26} {:>5} {:>9} {:>8} {:>9} {:>8} {:>13}",
                "recovery by kind", "n", "recovered", "min ms", "median ms", "max ms", "client errors"
            );
            for k in &self.recovery_by_kind {
                let _ = writeln!(
                    s,
                    "  {:<26} {:>5} {:>9} {:>8} {:>9} {:>8} {:>13}",
                    k.kind,
                    k.count,
                    k.recovered,
                    ms(k.min_ms),
                    ms(k.median_ms),
                    ms(k.max_ms),
                    k.client_errors
                );
            }
        }
        if !self.memory.is_empty() {
            let _ = writeln!(s, "\n  memory (RSS of the longest-lived process of each instance)");
            for m in &self.memory {
                let _ = writeln!(
                    s,
                    "    {:<12} {:>7.1} MB at {:>6.0} s  ->  {:>7.1} MB at {:>6.0} s  ({:+.1} MB)",
                    m.process,
                    m.first_rss_mb,
                    m.first_at_s,
                    m.last_rss_mb,
                    m.last_at_s,
                    m.last_rss_mb - m.first_rss_mb
                );
            }
        }
        if let Some(sab) = &self.sabotage {
            let _ = writeln!(s, "\n  sabotage    {sab}");
        }
        let violations = &self.check.violations;
        if violations.is_empty() {
            let _ = writeln!(s, "\n  invariants  all five hold");
        } else {
            let _ = writeln!(s, "\n  invariants  {} violation(s):", violations.len());
            for v in violations.iter().take(50) {
                let _ = writeln!(s, "    {v}");
            }
        }
        for f in &self.failures {
            let _ = writeln!(s, "  failure     {f}");
        }
        let _ = writeln!(s, "  logs, databases, NATS stores: {}", self.data_dir);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(index: usize, fault: Fault, recovered: Option<u64>, client_errors: u64) -> FaultRecord {
        FaultRecord {
            index,
            at_s: index as f64,
            description: fault.to_string(),
            fault,
            target: String::new(),
            held_ms: 0,
            recovered_after_ms: recovered,
            probe: None,
            detail: None,
            error: None,
            client_errors,
        }
    }

    #[test]
    fn recoveries_are_summarized_by_kind_in_order_of_first_occurrence() {
        let kill = |instance: &str| Fault::KillService { instance: instance.into(), down_ms: 1 };
        let faults = [
            record(0, kill("order-1"), Some(300), 4),
            record(1, Fault::KillDatabase { down_ms: 1, restart: "order-2".into() }, Some(900), 10),
            record(2, kill("inventory-2"), Some(100), 0),
            record(3, kill("payment-1"), None, 1),
            record(4, Fault::RollingRestart, Some(50), 0),
            record(5, kill(super::super::faults::GATEWAY_INSTANCE), Some(7), 0),
        ];
        let summary = summarize(&faults);
        let kinds: Vec<&str> = summary.iter().map(|k| k.kind.as_str()).collect();
        assert_eq!(kinds, ["kill_service", "kill_database", "rolling_restart", "kill_gateway"]);
        assert_eq!(
            summary[0],
            KindSummary {
                kind: "kill_service".into(),
                count: 3,
                recovered: 2,
                min_ms: Some(100),
                median_ms: Some(300),
                max_ms: Some(300),
                client_errors: 5,
            }
        );
        assert_eq!(summary[1].median_ms, Some(900));
        assert_eq!(summary[1].client_errors, 10);
    }
}
