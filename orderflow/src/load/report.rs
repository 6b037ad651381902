//! The result of a load run: counts, rates, latency percentiles, backlog, invariants, and the
//! verdict; as JSON (`--json-out`) and as a table for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::latency::Percentiles;

/// Latency distributions of a run, in milliseconds, all measured from each order's scheduled
/// send time (in a closed loop that is the actual send time).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latencies {
    /// Scheduled → `202 Accepted`.
    pub accept: Percentiles,
    /// Actual send → `202` (the server's share, without waiting for a free request slot).
    pub accept_service: Percentiles,
    /// Scheduled → `orders.confirmed` observed, standard orders.
    pub confirmed_standard: Percentiles,
    /// Scheduled → `orders.confirmed` observed, express orders.
    pub confirmed_express: Percentiles,
    /// Scheduled → `orders.cancelled` observed (any lane).
    pub cancelled: Percentiles,
}

/// Duplicate-key re-sends.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Duplicates {
    /// Re-sent with the same `Idempotency-Key`.
    pub sent: u64,
    /// Answered with the same order id.
    pub same_order: u64,
    /// Answered with another order id.
    pub mismatched: u64,
}

/// What the invariant checker found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InvariantSummary {
    /// No violations.
    pub ok: bool,
    /// Orders in the order database.
    pub orders: usize,
    /// Violations (at most 20 listed).
    pub violations: Vec<String>,
    /// Total violations.
    pub violation_count: usize,
    /// Dead letters by reason.
    pub dlq: BTreeMap<String, usize>,
}

/// One sample of the backlog (accepted orders not yet terminal).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct BacklogSample {
    /// Seconds since the run started.
    pub at_s: f64,
    /// Orders accepted and not yet terminal.
    pub outstanding: u64,
}

/// What the analytics service counted during the run (its summary after the run minus before).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AnalyticsCheck {
    /// Orders it saw accepted.
    pub accepted: i64,
    /// Orders it saw confirmed.
    pub confirmed: i64,
    /// Orders it saw cancelled, by reason.
    pub cancelled: BTreeMap<String, i64>,
    /// Whether these equal the generator's own counts.
    pub equal: bool,
}

/// Everything a load run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// Which system (`spawned (SQLite)` or the order URL).
    pub target: String,
    /// `open loop at 500 orders/s`, `closed loop with 32 clients`.
    pub schedule: String,
    /// Offered rate (open loop).
    pub offered_rate: Option<f64>,
    /// Seconds spent sending.
    pub send_seconds: f64,
    /// Orders sent (duplicate re-sends not included).
    pub sent: u64,
    /// Answered `202`.
    pub accepted: u64,
    /// Failed requests (including failed duplicate re-sends).
    pub errors: u64,
    /// errors / (sent + duplicate re-sends).
    pub error_rate: f64,
    /// Errors by kind.
    pub error_kinds: BTreeMap<String, u64>,
    /// The first few error messages.
    pub first_errors: Vec<String>,
    /// accepted / send_seconds.
    pub accept_rate: f64,
    /// Terminal orders / (last terminal event − first scheduled send): the rate at which the
    /// saga finished orders, drain included.
    pub completed_rate: f64,
    /// Confirmed orders.
    pub confirmed: u64,
    /// Cancelled orders by reason.
    pub cancelled: BTreeMap<String, u64>,
    /// Accepted orders whose terminal event was not seen within the drain but whose
    /// `GET /orders/{id}` shows a terminal state when looked up right after it.
    pub terminal_unobserved: u64,
    /// Accepted orders still pending after the drain.
    pub pending: u64,
    /// Messages on the terminal subjects without a readable `data.order_id`.
    pub undecodable_events: u64,
    /// Backlog when sending stopped.
    pub backlog_at_end_of_send: u64,
    /// Largest backlog seen.
    pub peak_backlog: u64,
    /// Backlog growth over the second half of the sending window, orders/s.
    pub backlog_growth_per_s: f64,
    /// Seconds from the end of sending until every order was terminal (or the drain timeout).
    pub drain_seconds: f64,
    /// Duplicate-key checks.
    pub duplicates: Duplicates,
    /// Latency percentiles.
    pub latency_ms: Latencies,
    /// Invariants, when checked.
    pub invariants: Option<InvariantSummary>,
    /// The analytics service's counts over the run, when it was asked.
    pub analytics: Option<AnalyticsCheck>,
    /// Open loop only: accepted and completed ≥ 95 % of the offered rate, the backlog did not
    /// grow, nothing left pending, errors within bounds.
    pub sustainable: Option<bool>,
    /// Backlog samples every 250 ms.
    pub backlog: Vec<BacklogSample>,
    /// Why the run failed; empty when it passed.
    pub failures: Vec<String>,
    /// CPU time this process used (utime + stime, Linux), set-up and drain included: what
    /// generating the load cost when `orderflow load` runs against a system in other processes
    /// (with `--spawn` the system shares the process and is counted too).
    pub cpu_seconds: Option<f64>,
    /// The accepted orders' ids, when [`LoadConfig::keep_accepted_ids`](super::LoadConfig) asked
    /// for them (not part of the JSON report).
    #[serde(skip)]
    pub accepted_ids: Vec<String>,
}

impl LoadReport {
    /// No failures.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// A table for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let l = &self.latency_ms;
        let _ = writeln!(out, "orderflow load: {} against {}", self.schedule, self.target);
        let _ = writeln!(
            out,
            "  sent {} in {:.1} s; accepted {} ({:.0}/s); errors {} ({:.2} %){}",
            self.sent,
            self.send_seconds,
            self.accepted,
            self.accept_rate,
            self.errors,
            self.error_rate * 100.0,
            if self.error_kinds.is_empty() { String::new() } else { format!(" {:?}", self.error_kinds) },
        );
        let cancelled: u64 = self.cancelled.values().sum();
        let _ = writeln!(
            out,
            "  terminal: confirmed {}, cancelled {}{}; completed {:.0} orders/s{}",
            self.confirmed,
            cancelled,
            if self.cancelled.is_empty() { String::new() } else { format!(" {:?}", self.cancelled) },
            self.completed_rate,
            self.offered_rate.map(|r| format!(" (offered {r:.0}/s)")).unwrap_or_default(),
        );
        let _ = writeln!(
            out,
            "  backlog: {} at end of send, peak {}, growth {:.0}/s; drained in {:.1} s; pending {}{}",
            self.backlog_at_end_of_send,
            self.peak_backlog,
            self.backlog_growth_per_s,
            self.drain_seconds,
            self.pending,
            if self.terminal_unobserved > 0 {
                format!(" (+{} terminal by the time they were looked up)", self.terminal_unobserved)
            } else {
                String::new()
            },
        );
        if self.duplicates.sent > 0 {
            let _ = writeln!(
                out,
                "  duplicate keys: {} re-sent, {} same order, {} mismatched",
                self.duplicates.sent, self.duplicates.same_order, self.duplicates.mismatched
            );
        }
        let _ =
            writeln!(out, "\n  latency (ms)              count      p50      p90      p99    p99.9      max");
        for (name, p) in [
            ("accept (202)", &l.accept),
            ("accept, server only", &l.accept_service),
            ("-> confirmed, standard", &l.confirmed_standard),
            ("-> confirmed, express", &l.confirmed_express),
            ("-> cancelled", &l.cancelled),
        ] {
            if p.count > 0 {
                let _ = writeln!(
                    out,
                    "  {name:<22} {:>8} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                    p.count, p.p50, p.p90, p.p99, p.p999, p.max
                );
            }
        }
        if let Some(inv) = &self.invariants {
            let _ = writeln!(
                out,
                "\n  invariants: {} ({} orders checked; dead letters {:?})",
                if inv.ok { "all hold".to_owned() } else { format!("{} violations", inv.violation_count) },
                inv.orders,
                inv.dlq
            );
            for v in &inv.violations {
                let _ = writeln!(out, "    {v}");
            }
        }
        if let Some(a) = &self.analytics {
            let _ = writeln!(
                out,
                "  analytics: accepted {}, confirmed {}, cancelled {} {:?}: {}",
                a.accepted,
                a.confirmed,
                a.cancelled.values().sum::<i64>(),
                a.cancelled,
                if a.equal {
                    "equal to the generator's counts"
                } else {
                    "DIFFERENT from the generator's counts"
                }
            );
        }
        if let Some(s) = self.sustainable {
            let _ = writeln!(out, "  sustainable at this rate: {}", if s { "yes" } else { "no" });
        }
        if self.passed() {
            let _ = writeln!(out, "  result: PASS");
        } else {
            let _ = writeln!(out, "  result: FAIL");
            for f in &self.failures {
                let _ = writeln!(out, "    - {f}");
            }
        }
        out
    }
}
