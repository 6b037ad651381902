//! One load run: send on the schedule, watch the backlog (and draw the progress bar), wait for
//! quiescence, look up what the event stream did not show, check the invariants, and judge.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::{Endpoints, LoadConfig, Schedule, Until};
use super::driver::{Driver, http_client};
use super::report::{AnalyticsCheck, BacklogSample, Duplicates, InvariantSummary, Latencies, LoadReport};
use super::tracker::Tracker;
use crate::analytics::fetch_summary;
use crate::invariants::{self, Targets};

/// Share of the offered rate that counts as keeping up.
pub const SUSTAINABLE_SHARE: f64 = 0.95;
/// At most this many still-pending orders are looked up over HTTP after the drain.
const MAX_LOOKUPS: usize = 2000;

/// Where the invariant checker looks, and the stock before the run.
#[derive(Clone, Debug)]
pub struct Checker {
    /// Databases, gateway, NATS.
    pub targets: Targets,
    /// available + reserved + committed per product before the run.
    pub initial_stock: BTreeMap<String, i64>,
}

/// When sending started and when the last send was answered.
#[derive(Clone, Copy, Debug)]
pub struct SendWindow {
    /// First scheduled send.
    pub started: Instant,
    /// Last order scheduled (open loop) or sent (closed loop).
    pub last_scheduled: Instant,
    /// Every send answered.
    pub answered: Instant,
}

/// Runs `config` against `endpoints` (the target must already be prepared: spawned, restocked).
pub async fn execute(
    config: &LoadConfig,
    endpoints: &Endpoints,
    target_label: String,
    checker: Option<Checker>,
    analytics_url: Option<&str>,
    shutdown: &CancellationToken,
) -> anyhow::Result<LoadReport> {
    let http = http_client(config.request_timeout)?;
    let analytics_before = match analytics_url {
        Some(url) => Some(fetch_summary(&http, url).await?),
        None => None,
    };
    let tracker =
        Tracker::start(&endpoints.nats_url, endpoints.nats_creds.as_deref(), &endpoints.nats_tls, 2).await?;
    let driver = Arc::new(Driver::new(
        http.clone(),
        &endpoints.order_url,
        config.mix.clone(),
        tracker,
        checker.is_some() || config.keep_accepted_ids,
        config.stats.clone(),
    ));

    let bar = progress_bar(config.progress);
    let samples = Arc::new(Mutex::new(Vec::new()));
    let monitor_stop = CancellationToken::new();
    let run_start = Instant::now();
    let monitor =
        tokio::spawn(monitor(driver.clone(), run_start, bar.clone(), samples.clone(), monitor_stop.clone()));

    let window = match config.schedule {
        Schedule::Open { rate } => {
            send_open(&driver, rate, config.until, config.max_inflight, shutdown).await
        }
        Schedule::Closed { clients } => send_closed(&driver, clients, config.until, shutdown).await,
    };
    let backlog_at_end_of_send = driver.tracker().outstanding() as u64;
    let drain_deadline = Instant::now() + config.drain_timeout;
    tokio::select! {
        _ = driver.tracker().wait_quiet(drain_deadline) => {}
        _ = shutdown.cancelled() => {}
    }
    let drained_at = Instant::now();
    monitor_stop.cancel();
    let _ = monitor.await;
    bar.finish_and_clear();

    let stats = driver.stats().clone();
    let outcomes = driver.tracker().finish();
    let (terminal_unobserved, pending) = look_up(&http, &endpoints.order_url, &outcomes.pending).await;

    let accepted_ids = stats.take_accepted_ids();
    let invariants = match &checker {
        Some(c) => {
            // Terminal orders are not a quiet system: inventory commits a confirmed order's
            // reservation in parallel with the order service, maybe a little later.
            if !shutdown.is_cancelled()
                && let Err(e) = invariants::wait_until_quiet(&c.targets, config.drain_timeout).await
            {
                tracing::warn!(error = %e, "checking the invariants of a system that is not quiet");
            }
            Some(check_invariants(c, &accepted_ids).await?)
        }
        None => None,
    };
    let accepted_ids = if config.keep_accepted_ids { accepted_ids } else { Vec::new() };

    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(PoisonError::into_inner));
    let sent = stats.sent.load(Ordering::Relaxed);
    let accepted = stats.accepted.load(Ordering::Relaxed);
    let errors = stats.errors.load(Ordering::Relaxed);
    let duplicates = Duplicates {
        sent: stats.duplicates_sent.load(Ordering::Relaxed),
        same_order: stats.duplicates_same.load(Ordering::Relaxed),
        mismatched: stats.duplicates_mismatched.load(Ordering::Relaxed),
    };
    let requests = sent + duplicates.sent;
    let error_rate = if requests == 0 { 0.0 } else { errors as f64 / requests as f64 };
    let send_seconds = window.answered.saturating_duration_since(window.started).as_secs_f64();
    let terminal = outcomes.confirmed + outcomes.cancelled.values().sum::<u64>();
    let completed_rate = match (outcomes.first_scheduled, outcomes.last_terminal) {
        (Some(first), Some(last)) if last > first => terminal as f64 / (last - first).as_secs_f64(),
        _ => 0.0,
    };
    let sending = window.last_scheduled.saturating_duration_since(window.started).as_secs_f64();
    let growth = backlog_growth(&samples, sending);
    let (accept, accept_service) = stats.accept_latency();
    let group = |i: usize| outcomes.confirmed_latency.get(i).map(|l| l.summary()).unwrap_or_default();
    let offered_rate = match config.schedule {
        Schedule::Open { rate } => Some(rate),
        Schedule::Closed { .. } => None,
    };

    let mut report = LoadReport {
        target: target_label,
        schedule: format!("{}, {}", config.schedule, config.until),
        offered_rate,
        send_seconds,
        sent,
        accepted,
        errors,
        error_rate,
        error_kinds: stats.error_kinds(),
        first_errors: stats.first_errors(),
        accept_rate: if send_seconds > 0.0 { accepted as f64 / send_seconds } else { 0.0 },
        completed_rate,
        confirmed: outcomes.confirmed,
        cancelled: outcomes.cancelled.clone(),
        terminal_unobserved,
        pending,
        undecodable_events: outcomes.undecodable,
        backlog_at_end_of_send,
        peak_backlog: samples.iter().map(|s| s.outstanding).max().unwrap_or(0).max(backlog_at_end_of_send),
        backlog_growth_per_s: growth,
        drain_seconds: drained_at.saturating_duration_since(window.answered).as_secs_f64(),
        duplicates,
        latency_ms: Latencies {
            accept: accept.summary(),
            accept_service: accept_service.summary(),
            confirmed_standard: group(0),
            confirmed_express: group(1),
            cancelled: outcomes.cancelled_latency.summary(),
        },
        invariants,
        analytics: None,
        sustainable: None,
        backlog: samples,
        failures: Vec::new(),
        cpu_seconds: crate::bench::own_cpu_seconds(),
        accepted_ids,
    };
    if let (Some(url), Some(before)) = (analytics_url, &analytics_before) {
        report.analytics = Some(analytics_check(&http, url, before, &report, config.drain_timeout).await?);
    }
    judge(&mut report, config, shutdown.is_cancelled());
    Ok(report)
}

/// The analytics service's counts since `before`, once they reach the generator's (the read
/// model trails the saga by a moment), or as they are after `wait`.
async fn analytics_check(
    http: &reqwest::Client,
    url: &str,
    before: &analytics_service::Summary,
    report: &LoadReport,
    wait: Duration,
) -> anyhow::Result<AnalyticsCheck> {
    let expected_cancelled: BTreeMap<String, i64> =
        report.cancelled.iter().map(|(k, v)| (k.clone(), i64::try_from(*v).unwrap_or(i64::MAX))).collect();
    let deadline = Instant::now() + wait;
    loop {
        let after = fetch_summary(http, url).await?;
        let mut cancelled = after.cancelled_by_reason.clone();
        for (reason, n) in &before.cancelled_by_reason {
            if let Some(v) = cancelled.get_mut(reason) {
                *v -= n;
            }
        }
        cancelled.retain(|_, v| *v != 0);
        let check = AnalyticsCheck {
            accepted: after.totals.accepted - before.totals.accepted,
            confirmed: after.totals.confirmed - before.totals.confirmed,
            equal: false,
            cancelled,
        };
        let equal = u64::try_from(check.accepted).ok() == Some(report.accepted)
            && u64::try_from(check.confirmed).ok() == Some(report.confirmed)
            && check.cancelled == expected_cancelled;
        if equal || Instant::now() >= deadline {
            return Ok(AnalyticsCheck { equal, ..check });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn judge(report: &mut LoadReport, config: &LoadConfig, interrupted: bool) {
    let mut failures = Vec::new();
    if interrupted {
        failures.push("interrupted".to_owned());
    }
    if report.accepted == 0 {
        failures.push("no order was accepted".to_owned());
    }
    if report.error_rate > config.max_error_rate {
        failures.push(format!(
            "error rate {:.2} % exceeds --max-error-rate {:.2} % ({:?})",
            report.error_rate * 100.0,
            config.max_error_rate * 100.0,
            report.error_kinds
        ));
    }
    if report.pending > 0 {
        failures.push(format!(
            "{} accepted orders still pending {:.0} s after sending stopped",
            report.pending, report.drain_seconds
        ));
    }
    if let Some(a) = &report.analytics
        && !a.equal
    {
        failures.push(format!(
            "the analytics service counted accepted {}, confirmed {}, cancelled {:?}; the generator {}, {}, {:?}",
            a.accepted, a.confirmed, a.cancelled, report.accepted, report.confirmed, report.cancelled
        ));
    }
    if report.duplicates.mismatched > 0 {
        failures
            .push(format!("{} duplicate-key re-sends named a different order", report.duplicates.mismatched));
    }
    if let Some(inv) = &report.invariants
        && !inv.ok
    {
        failures.push(format!("{} invariant violations", inv.violation_count));
    }
    if let Some(rate) = report.offered_rate {
        let keeps_up = rate * SUSTAINABLE_SHARE;
        let growing = report.backlog_growth_per_s > rate * (1.0 - SUSTAINABLE_SHARE)
            && report.backlog_at_end_of_send as f64 > (rate * 0.25).max(50.0);
        report.sustainable = Some(
            report.accept_rate >= keeps_up
                && report.completed_rate >= keeps_up
                && !growing
                && report.pending == 0
                && report.error_rate <= config.max_error_rate,
        );
    }
    report.failures = failures;
}

/// Slope of the backlog over the second half of the sending window, orders/s.
fn backlog_growth(samples: &[BacklogSample], sending: f64) -> f64 {
    let half: Vec<&BacklogSample> =
        samples.iter().filter(|s| s.at_s >= sending / 2.0 && s.at_s <= sending + 0.01).collect();
    match (half.first(), half.last()) {
        (Some(a), Some(b)) if b.at_s > a.at_s => {
            (b.outstanding as f64 - a.outstanding as f64) / (b.at_s - a.at_s)
        }
        _ => 0.0,
    }
}

fn progress_bar(enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar
}

/// Samples the backlog every 250 ms and shows live rates.
async fn monitor(
    driver: Arc<Driver>,
    start: Instant,
    bar: ProgressBar,
    samples: Arc<Mutex<Vec<BacklogSample>>>,
    stop: CancellationToken,
) {
    let every = Duration::from_millis(250);
    let mut tick = tokio::time::interval(every);
    let (mut last_sent, mut last_terminal, mut last_at) = (0u64, 0u64, Instant::now());
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let stats = driver.stats();
        let sent = stats.sent.load(Ordering::Relaxed);
        let terminal = driver.tracker().terminal();
        let outstanding = driver.tracker().outstanding() as u64;
        samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(BacklogSample { at_s: now.duration_since(start).as_secs_f64(), outstanding });
        let dt = now.duration_since(last_at).as_secs_f64().max(1e-3);
        if !bar.is_hidden() {
            bar.set_message(format!(
                "sent {sent} ({:.0}/s) | accepted {} | terminal {terminal} ({:.0}/s) | in flight {} | backlog {outstanding} | errors {}",
                (sent - last_sent) as f64 / dt,
                stats.accepted.load(Ordering::Relaxed),
                terminal.saturating_sub(last_terminal) as f64 / dt,
                stats.inflight.load(Ordering::Relaxed),
                stats.errors.load(Ordering::Relaxed),
            ));
        }
        (last_sent, last_terminal, last_at) = (sent, terminal, now);
        ticks += 1;
        if ticks.is_multiple_of(20) {
            driver.tracker().prune();
        }
    }
}

/// Open loop: order `i` is due at `start + i / rate`, whatever happened before.
async fn send_open(
    driver: &Arc<Driver>,
    rate: f64,
    until: Until,
    max_inflight: usize,
    shutdown: &CancellationToken,
) -> SendWindow {
    let slots = Arc::new(Semaphore::new(max_inflight));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    let mut last_scheduled = started;
    let mut i: u64 = 0;
    loop {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        let done = match until {
            Until::Count(n) => i >= n,
            Until::Elapsed(d) => due.duration_since(started) >= d,
        };
        if done || shutdown.is_cancelled() {
            break;
        }
        if due > Instant::now() {
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        // A full window makes this wait; the order's latency still counts from `due`.
        let Ok(slot) = slots.clone().acquire_owned().await else { break };
        let d = driver.clone();
        tasks.spawn(async move {
            d.place_mixed(due).await;
            drop(slot);
        });
        while tasks.try_join_next().is_some() {}
        last_scheduled = due;
        i += 1;
    }
    while tasks.join_next().await.is_some() {}
    SendWindow { started, last_scheduled, answered: Instant::now() }
}

/// Closed loop: `clients` loops, each sending when its previous order was answered.
async fn send_closed(
    driver: &Arc<Driver>,
    clients: usize,
    until: Until,
    shutdown: &CancellationToken,
) -> SendWindow {
    let started = Instant::now();
    let (budget, deadline) = match until {
        Until::Count(n) => (n, None),
        Until::Elapsed(d) => (u64::MAX, Some(started + d)),
    };
    let budget = Arc::new(AtomicU64::new(budget));
    let mut tasks = JoinSet::new();
    for _ in 0..clients {
        let (d, budget, stop) = (driver.clone(), budget.clone(), shutdown.clone());
        tasks.spawn(async move {
            let mut last = started;
            loop {
                let now = Instant::now();
                if stop.is_cancelled() || deadline.is_some_and(|t| now >= t) {
                    break;
                }
                if budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_err() {
                    break;
                }
                d.place_mixed(now).await;
                last = now;
            }
            last
        });
    }
    let mut last_scheduled = started;
    while let Some(r) = tasks.join_next().await {
        if let Ok(last) = r {
            last_scheduled = last_scheduled.max(last);
        }
    }
    SendWindow { started, last_scheduled, answered: Instant::now() }
}

#[derive(Deserialize)]
struct OrderStatus {
    status: String,
}

/// Looks up orders whose terminal event was not seen: (terminal after all, still pending).
async fn look_up(http: &reqwest::Client, order_url: &str, ids: &[String]) -> (u64, u64) {
    if ids.is_empty() {
        return (0, 0);
    }
    let base = order_url.trim_end_matches('/');
    let checked = ids.len().min(MAX_LOOKUPS);
    let terminal = futures_util::stream::iter(&ids[..checked])
        .map(|id| async move {
            let res = http.get(format!("{base}/orders/{id}")).send().await.ok()?;
            let o: OrderStatus = res.json().await.ok()?;
            Some(o.status == "confirmed" || o.status == "cancelled")
        })
        .buffer_unordered(16)
        .filter(|t| std::future::ready(*t == Some(true)))
        .count()
        .await as u64;
    (terminal, ids.len() as u64 - terminal)
}

async fn check_invariants(c: &Checker, accepted: &[String]) -> anyhow::Result<InvariantSummary> {
    let r = invariants::check(&c.targets, accepted, Some(&c.initial_stock)).await?;
    Ok(InvariantSummary {
        ok: r.is_ok(),
        orders: r.orders,
        violation_count: r.violations.len(),
        violations: r.violations.iter().take(20).map(ToString::to_string).collect(),
        dlq: r.dlq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at_s: f64, outstanding: u64) -> BacklogSample {
        BacklogSample { at_s, outstanding }
    }

    #[test]
    fn a_steady_backlog_does_not_grow() {
        let samples = [s(0.25, 10), s(2.0, 12), s(3.0, 11), s(4.0, 12)];
        assert!(backlog_growth(&samples, 4.0).abs() < 1.0);
    }

    #[test]
    fn a_growing_backlog_has_a_positive_slope() {
        let samples = [s(1.0, 100), s(2.0, 300), s(3.0, 500), s(4.0, 700)];
        assert!((backlog_growth(&samples, 4.0) - 200.0).abs() < 1e-9);
    }
}
