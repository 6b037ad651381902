//! The saga under load: the highest sustainable open-loop rate (a ramp, then a bisection, each
//! step on a fresh system so an overloaded step cannot spoil the next), latency at a fixed rate,
//! and express orders overtaking a backlog of standard ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::BenchConfig;
use crate::load::driver::{Driver, Lane, http_client};
use crate::load::run::{self, Checker};
use crate::load::tracker::Tracker;
use crate::load::{
    LoadConfig, LoadReport, OrderMix, Percentiles, Schedule, Share, SpawnedSystem, Target, Until,
};

/// Stock per product for benchmark systems: nothing sells out.
const RESTOCK: i64 = crate::load::SPAWN_RESTOCK;

/// What every spawned system reported about itself.
#[derive(Clone, Debug, Default)]
pub struct SystemSamples {
    /// Services ready after NATS was up.
    pub ready: Vec<Duration>,
    /// nats-server start.
    pub nats_start: Vec<Duration>,
    /// Largest nats-server VmHWM.
    pub nats_peak_rss: Option<u64>,
}

/// One step of the search.
#[derive(Clone, Debug, Serialize)]
pub struct CapacityStep {
    /// Offered orders/s.
    pub offered: f64,
    /// Accepted (202) orders/s.
    pub accept_rate: f64,
    /// Orders finished (terminal) per second, drain included.
    pub completed_rate: f64,
    /// Scheduled → confirmed, p50 (ms).
    pub p50_ms: f64,
    /// Scheduled → confirmed, p99 (ms).
    pub p99_ms: f64,
    /// Scheduled → 202, p99 (ms).
    pub accept_p99_ms: f64,
    /// Backlog when sending stopped.
    pub backlog_at_end: u64,
    /// Backlog growth in the second half of the step (orders/s).
    pub backlog_growth_per_s: f64,
    /// Failed requests.
    pub errors: u64,
    /// Orders still pending after the step's drain timeout.
    pub pending: u64,
    /// The verdict.
    pub sustainable: bool,
}

impl CapacityStep {
    fn from_report(offered: f64, r: &LoadReport) -> Self {
        Self {
            offered,
            accept_rate: r.accept_rate,
            completed_rate: r.completed_rate,
            p50_ms: r.latency_ms.confirmed_standard.p50,
            p99_ms: r.latency_ms.confirmed_standard.p99,
            accept_p99_ms: r.latency_ms.accept.p99,
            backlog_at_end: r.backlog_at_end_of_send,
            backlog_growth_per_s: r.backlog_growth_per_s,
            errors: r.errors,
            pending: r.pending,
            sustainable: r.sustainable.unwrap_or(false),
        }
    }
}

/// The search's result on one database.
#[derive(Clone, Debug, Serialize)]
pub struct Capacity {
    /// `SQLite` or `PostgreSQL`.
    pub database: String,
    /// Highest offered rate that was sustainable.
    pub max_sustainable: f64,
    /// Every step, in the order run.
    pub steps: Vec<CapacityStep>,
    /// Seconds per step.
    pub step_seconds: f64,
}

/// Latency at a fixed rate.
#[derive(Clone, Debug, Serialize)]
pub struct FixedRate {
    /// Orders/s offered.
    pub rate: f64,
    /// Seconds sent.
    pub seconds: f64,
    /// Orders accepted.
    pub accepted: u64,
    /// Orders confirmed.
    pub confirmed: u64,
    /// Orders finished per second.
    pub completed_rate: f64,
    /// Scheduled → 202.
    pub accept: Percentiles,
    /// Scheduled → confirmed.
    pub confirmed_latency: Percentiles,
    /// Sustainable at this rate.
    pub sustainable: bool,
    /// The invariant checker found nothing and no order was left pending.
    pub invariants_ok: bool,
    /// Orders still pending after the drain.
    pub pending: u64,
    /// What the invariant checker found (the first few), or why it did not run.
    pub problems: Vec<String>,
}

/// Express orders against a backlog of standard ones.
#[derive(Clone, Debug, Serialize)]
pub struct ExpressUnderBacklog {
    /// Standard orders in the burst.
    pub burst: u64,
    /// Seconds to post the burst (64 clients, as fast as possible).
    pub burst_post_seconds: f64,
    /// Largest backlog (accepted, not terminal) seen.
    pub peak_backlog: u64,
    /// Seconds until the whole burst was terminal.
    pub burst_drain_seconds: f64,
    /// Probe pairs sent while the backlog lasted.
    pub probes: u64,
    /// Burst orders: scheduled → confirmed.
    pub burst_latency: Percentiles,
    /// Standard probes during the backlog: scheduled → confirmed.
    pub standard: Percentiles,
    /// Express probes during the backlog: scheduled → confirmed.
    pub express: Percentiles,
    /// standard p50 / express p50.
    pub p50_speedup: f64,
}

/// Finds the highest sustainable rate on one database.
pub async fn capacity(
    cfg: &BenchConfig,
    database_url: Option<&str>,
    samples: &mut SystemSamples,
    log: &dyn Fn(String),
    shutdown: &CancellationToken,
) -> anyhow::Result<Capacity> {
    let database = if database_url.is_some() { "PostgreSQL" } else { "SQLite" }.to_owned();
    let mut steps = Vec::new();
    let (mut lo, mut hi): (f64, Option<f64>) = (0.0, None);
    let mut rate = cfg.ramp_start;
    while rate <= cfg.ramp_max && !shutdown.is_cancelled() {
        let step = capacity_step(cfg, database_url, rate, samples, shutdown).await?;
        log(step_line(&database, &step));
        let ok = step.sustainable;
        steps.push(step);
        if ok {
            lo = rate;
            rate *= 2.0;
        } else {
            hi = Some(rate);
            break;
        }
    }
    for _ in 0..cfg.bisect_steps {
        let Some(h) = hi else { break };
        let mid = ((lo + h) / 2.0 / 25.0).round() * 25.0;
        if mid <= lo || mid >= h || shutdown.is_cancelled() {
            break;
        }
        let step = capacity_step(cfg, database_url, mid, samples, shutdown).await?;
        log(step_line(&database, &step));
        if step.sustainable {
            lo = mid;
        } else {
            hi = Some(mid);
        }
        steps.push(step);
    }
    Ok(Capacity { database, max_sustainable: lo, steps, step_seconds: cfg.step.as_secs_f64() })
}

fn step_line(database: &str, s: &CapacityStep) -> String {
    format!(
        "saga on {database} at {:.0}/s: accepted {:.0}/s, completed {:.0}/s, p99 {:.1} ms, backlog {} -> {}",
        s.offered,
        s.accept_rate,
        s.completed_rate,
        s.p99_ms,
        s.backlog_at_end,
        if s.sustainable { "sustainable" } else { "NOT sustainable" }
    )
}

fn standard_mix() -> OrderMix {
    OrderMix { express_share: Share::default(), duplicate_key_share: Share::default(), ..OrderMix::default() }
}

async fn start_system(
    database_url: Option<&str>,
    samples: &mut SystemSamples,
) -> anyhow::Result<SpawnedSystem> {
    let spawned = SpawnedSystem::start(database_url, Some(RESTOCK), standard_mix().products.ids()).await?;
    samples.ready.push(spawned.ready_after);
    samples.nats_start.push(spawned.nats_start);
    Ok(spawned)
}

/// Records the system's nats-server peak RSS, stops the system (a failure to stop is only
/// logged), and hands back what ran on it.
async fn stop_system<T>(
    mut spawned: SpawnedSystem,
    samples: &mut SystemSamples,
    result: anyhow::Result<T>,
) -> anyhow::Result<T> {
    if let Some(rss) = spawned.nats_peak_rss() {
        samples.nats_peak_rss = Some(samples.nats_peak_rss.map_or(rss, |r| r.max(rss)));
    }
    if let Err(e) = spawned.stop().await {
        tracing::warn!(error = %e, "a benchmark system did not stop cleanly");
    }
    result
}

/// Runs one open-loop load on a fresh system and stops it again.
async fn open_loop_on_fresh_system(
    database_url: Option<&str>,
    rate: f64,
    length: Duration,
    drain: Duration,
    check_invariants: bool,
    samples: &mut SystemSamples,
    shutdown: &CancellationToken,
) -> anyhow::Result<LoadReport> {
    let spawned = start_system(database_url, samples).await?;
    let endpoints = spawned.endpoints();
    let mut config =
        LoadConfig::new(Target::Running(endpoints.clone()), Schedule::Open { rate }, Until::Elapsed(length));
    config.mix = standard_mix();
    config.max_inflight = 2048;
    config.drain_timeout = drain;
    config.check_invariants = check_invariants;
    let checker = check_invariants
        .then(|| Checker { targets: spawned.targets(), initial_stock: spawned.initial_stock.clone() });
    // The checked runs cross-check the analytics service's counts too.
    let analytics = check_invariants.then(|| spawned.system.analytics_url.clone());
    let report = run::execute(
        &config,
        &endpoints,
        spawned.system.database.clone(),
        checker,
        analytics.as_deref(),
        shutdown,
    )
    .await;
    stop_system(spawned, samples, report).await
}

async fn capacity_step(
    cfg: &BenchConfig,
    database_url: Option<&str>,
    rate: f64,
    samples: &mut SystemSamples,
    shutdown: &CancellationToken,
) -> anyhow::Result<CapacityStep> {
    let report =
        open_loop_on_fresh_system(database_url, rate, cfg.step, cfg.step_drain, false, samples, shutdown)
            .await?;
    Ok(CapacityStep::from_report(rate, &report))
}

/// Latency at `cfg.latency_rate` on SQLite, invariants checked afterwards.
pub async fn fixed_rate(
    cfg: &BenchConfig,
    samples: &mut SystemSamples,
    shutdown: &CancellationToken,
) -> anyhow::Result<FixedRate> {
    let r = open_loop_on_fresh_system(
        None,
        cfg.latency_rate,
        cfg.latency_duration,
        Duration::from_secs(60),
        true,
        samples,
        shutdown,
    )
    .await?;
    Ok(FixedRate {
        rate: cfg.latency_rate,
        seconds: cfg.latency_duration.as_secs_f64(),
        accepted: r.accepted,
        confirmed: r.confirmed,
        completed_rate: r.completed_rate,
        accept: r.latency_ms.accept,
        confirmed_latency: r.latency_ms.confirmed_standard,
        sustainable: r.sustainable.unwrap_or(false),
        invariants_ok: r.invariants.as_ref().is_some_and(|i| i.ok) && r.pending == 0,
        pending: r.pending,
        problems: match &r.invariants {
            Some(i) => i.violations.iter().take(5).cloned().collect(),
            None => vec!["not checked".to_owned()],
        },
    })
}

const GROUP_BURST: usize = 0;
const GROUP_STANDARD_PROBE: usize = 1;
const GROUP_EXPRESS_PROBE: usize = 2;
const BURST_CLIENTS: u64 = 64;
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// Posts `cfg.express_burst` standard orders as fast as possible and, while they are queued,
/// sends a standard and an express probe every 50 ms.
pub async fn express_under_backlog(
    cfg: &BenchConfig,
    samples: &mut SystemSamples,
    shutdown: &CancellationToken,
) -> anyhow::Result<ExpressUnderBacklog> {
    let spawned = start_system(None, samples).await?;
    let result = express_on(cfg, &spawned, shutdown).await;
    stop_system(spawned, samples, result).await
}

async fn express_on(
    cfg: &BenchConfig,
    spawned: &SpawnedSystem,
    shutdown: &CancellationToken,
) -> anyhow::Result<ExpressUnderBacklog> {
    let endpoints = spawned.endpoints();
    let tracker =
        Tracker::start(&endpoints.nats_url, endpoints.nats_creds.as_deref(), &endpoints.nats_tls, 3).await?;
    let http = http_client(Duration::from_secs(60))?;
    let driver =
        Arc::new(Driver::new(http, &endpoints.order_url, standard_mix(), tracker, false, Default::default()));
    let burst = cfg.express_burst;
    let start = Instant::now();

    let budget = Arc::new(AtomicU64::new(burst));
    let mut posting = JoinSet::new();
    for _ in 0..BURST_CLIENTS.min(burst) {
        let (d, budget) = (driver.clone(), budget.clone());
        posting.spawn(async move {
            while budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_ok() {
                d.place(Instant::now(), Lane::Standard, GROUP_BURST).await;
            }
        });
    }
    let posting_done = {
        let token = CancellationToken::new();
        let done = token.clone();
        tokio::spawn(async move {
            while posting.join_next().await.is_some() {}
            done.cancel();
        });
        token
    };

    let threshold = (burst / 20).max(10) as usize;
    let mut probes = 0u64;
    let mut probing = false;
    let mut peak = 0usize;
    let mut burst_post_seconds = None;
    let mut probe_tasks = JoinSet::new();
    let mut tick = tokio::time::interval(PROBE_EVERY);
    let limit = start + Duration::from_secs(300);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => break,
        }
        let outstanding = driver.tracker().outstanding();
        peak = peak.max(outstanding);
        let posted = posting_done.is_cancelled();
        if posted && burst_post_seconds.is_none() {
            burst_post_seconds = Some(start.elapsed().as_secs_f64());
        }
        if (posted && outstanding < threshold && probes >= 10) || Instant::now() > limit {
            break;
        }
        if probing || outstanding >= threshold || posted {
            probing = true;
            probes += 1;
            for (lane, group) in
                [(Lane::Standard, GROUP_STANDARD_PROBE), (Lane::Express, GROUP_EXPRESS_PROBE)]
            {
                let d = driver.clone();
                probe_tasks.spawn(async move { d.place(Instant::now(), lane, group).await });
            }
        }
        while probe_tasks.try_join_next().is_some() {}
    }
    while probe_tasks.join_next().await.is_some() {}
    driver.tracker().wait_quiet(Instant::now() + Duration::from_secs(120)).await;
    let burst_drain_seconds = start.elapsed().as_secs_f64();
    let outcomes = driver.tracker().finish();
    let summary = |g: usize| outcomes.confirmed_latency.get(g).map(|l| l.summary()).unwrap_or_default();
    let (standard, express) = (summary(GROUP_STANDARD_PROBE), summary(GROUP_EXPRESS_PROBE));
    Ok(ExpressUnderBacklog {
        burst,
        burst_post_seconds: burst_post_seconds.unwrap_or(burst_drain_seconds),
        peak_backlog: peak as u64,
        burst_drain_seconds,
        probes,
        burst_latency: summary(GROUP_BURST),
        standard,
        express,
        p50_speedup: super::jetstream::ratio(standard.p50, express.p50),
    })
}
