//! `orderflow bench`: one command, one run, one report. It measures, on this machine, in this
//! order:
//!
//! - latency at a fixed 500 orders/s, invariants checked afterwards, and the process's peak
//!   memory right after it (first, so that nothing else has grown the heap yet);
//! - cost per order at that rate with the system, its nats-server and the load generator each
//!   in a process of its own: CPU per order per process, RSS, log bytes per order (SQLite, and
//!   PostgreSQL when a `postgres://` URL is given);
//! - the raw JetStream ceiling (async-nats pipelined publish, pull consume + ack) and orderflow's
//!   messaging layer (`Publisher::publish_all`, `ConsumerRuntime`) on the same nats-server;
//! - the saga's highest sustainable open-loop rate on SQLite (and PostgreSQL when a
//!   `postgres://` URL is given), each step on a fresh system;
//! - express orders against a backlog of standard ones;
//! - binary size and time to ready (of every system started).
//!
//! It writes `bench.json` and `bench.md` and prints a table. It measures and reports; it never
//! tunes or changes the system under test.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! let config = orderflow::bench::BenchConfig::quick();
//! let report = orderflow::bench::run_bench(&config, &tokio_util::sync::CancellationToken::new()).await?;
//! println!("{}", report.render_table());
//! # Ok(()) }
//! ```

mod cost;
mod jetstream;
mod report;
mod saga;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use cost::{CostPerOrder, RssOverTime, own_cpu_seconds};
pub use jetstream::JetStreamNumbers;
pub use saga::{Capacity, CapacityStep, ExpressUnderBacklog, FixedRate};

use crate::load::proc_status_bytes;

/// Sizes of a benchmark run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// `--quick`: small counts (CI smoke test).
    pub quick: bool,
    /// Where `bench.json` and `bench.md` go; `None` writes nothing.
    pub out_dir: Option<PathBuf>,
    /// `postgres://…`: also search the saga's capacity on PostgreSQL.
    pub postgres_url: Option<String>,
    /// Progress lines on stderr.
    pub verbose: bool,
    /// The `orderflow` binary that the cost run starts as `orderflow up` and `orderflow load`
    /// (`None`: this executable).
    pub exe: Option<PathBuf>,
    /// Messages per JetStream measurement.
    pub messages: u64,
    /// Sending time of one capacity step.
    pub step: Duration,
    /// How long a capacity step may drain before it counts as not keeping up.
    pub step_drain: Duration,
    /// First rate of the ramp (doubles each step).
    pub ramp_start: f64,
    /// Highest rate tried.
    pub ramp_max: f64,
    /// Bisection steps between the last sustainable and the first unsustainable rate.
    pub bisect_steps: u32,
    /// Rate of the latency measurement.
    pub latency_rate: f64,
    /// Length of the latency measurement.
    pub latency_duration: Duration,
    /// Standard orders posted at once before measuring express latency.
    pub express_burst: u64,
}

impl BenchConfig {
    /// The full run: 100,000 messages, 8 s capacity steps from 250/s to 16,000/s with three
    /// bisections, 20 s at 500/s, a burst of 5,000 (a few minutes).
    pub fn standard() -> Self {
        Self {
            quick: false,
            out_dir: Some(PathBuf::from("bench-results")),
            postgres_url: None,
            verbose: true,
            exe: None,
            messages: 100_000,
            step: Duration::from_secs(8),
            step_drain: Duration::from_secs(10),
            ramp_start: 250.0,
            ramp_max: 16_000.0,
            bisect_steps: 3,
            latency_rate: 500.0,
            latency_duration: Duration::from_secs(20),
            express_burst: 5_000,
        }
    }

    /// The smoke run (under a minute): 10,000 messages, 2 s steps at 250 and 500/s, 3 s at
    /// 500/s, a burst of 1,000.
    pub fn quick() -> Self {
        Self {
            quick: true,
            messages: 10_000,
            step: Duration::from_secs(2),
            step_drain: Duration::from_secs(5),
            ramp_max: 500.0,
            bisect_steps: 0,
            latency_duration: Duration::from_secs(3),
            express_burst: 1_000,
            ..Self::standard()
        }
    }
}

/// Where and on what the benchmark ran.
#[derive(Clone, Debug, Serialize)]
pub struct Environment {
    /// orderflow's version.
    pub orderflow_version: String,
    /// `release` or `debug` (a debug build's numbers say little).
    pub build_profile: String,
    /// CPU cores available.
    pub cores: usize,
    /// CPU model.
    pub cpu: String,
    /// nats-server version.
    pub nats_server: String,
    /// Kernel.
    pub os: String,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// `--quick`.
    pub quick: bool,
    /// 1, 5 and 15 minute load averages when the run started: other work on the machine shares
    /// its cores with the benchmark.
    pub load_average_at_start: String,
}

/// Memory, size and start-up.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Resources {
    /// Peak resident memory (`VmHWM`) of this process during the fixed-rate run, the first
    /// thing the benchmark does: the three services, the gateway simulator and the load
    /// generator share the process, as the services share it in `orderflow up`.
    pub peak_rss_under_load_bytes: u64,
    /// Peak resident memory over the whole benchmark (the messaging measurements hold their
    /// messages in memory; the allocator keeps freed memory).
    pub peak_rss_bytes: u64,
    /// Resident memory at the end.
    pub rss_at_end_bytes: u64,
    /// Largest peak resident memory of a nats-server child.
    pub nats_peak_rss_bytes: Option<u64>,
    /// The executable measured.
    pub binary: String,
    /// Its size.
    pub binary_bytes: u64,
    /// Services ready after NATS was up: the first system (cold) (ms).
    pub ready_first_ms: f64,
    /// Median over every system started (ms).
    pub ready_median_ms: f64,
    /// Slowest (ms).
    pub ready_max_ms: f64,
    /// Systems started.
    pub systems_started: usize,
    /// nats-server start, median (ms).
    pub nats_start_median_ms: f64,
}

/// One goal of the performance issue and how this run did.
#[derive(Clone, Debug, Serialize)]
pub struct Goal {
    /// The goal.
    pub goal: String,
    /// What was measured.
    pub measured: String,
    /// Met, missed, or not decidable from this run.
    pub met: Option<bool>,
}

/// Everything `orderflow bench` measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Machine and versions.
    pub environment: Environment,
    /// Raw JetStream and orderflow's messaging layer.
    pub jetstream: JetStreamNumbers,
    /// Saga capacity per database.
    pub saga: Vec<Capacity>,
    /// Highest sustainable rate on SQLite / raw publish ceiling.
    pub saga_to_raw_publish_ratio: f64,
    /// Events published per order on the happy path (created, reserved, completed, confirmed).
    pub events_per_order: u32,
    /// Latency at the fixed rate.
    pub fixed_rate: FixedRate,
    /// CPU, memory and logs per order at the fixed rate, per database, separate processes.
    pub cost: Vec<CostPerOrder>,
    /// Express lane under a backlog.
    pub express: ExpressUnderBacklog,
    /// Memory, size, start-up.
    pub resources: Resources,
    /// The issue's goals.
    pub goals: Vec<Goal>,
    /// Wall time of the whole run (s).
    pub elapsed_seconds: f64,
}

/// Runs every measurement and writes `bench.json` and `bench.md` to `config.out_dir`.
pub async fn run_bench(config: &BenchConfig, shutdown: &CancellationToken) -> anyhow::Result<BenchReport> {
    let started = Instant::now();
    let verbose = config.verbose;
    let log = move |line: String| {
        if verbose {
            eprintln!("bench: {line}");
        }
    };
    let environment = environment(config.quick);
    if environment.build_profile == "debug" {
        log("this is a debug build: numbers are far below a release build's".to_owned());
    }

    // The fixed-rate run goes first, while this process holds nothing else, so that its peak
    // memory is the system's (and the load generator's) under load, not the leftovers of the
    // messaging measurements that keep 100,000 messages in memory.
    let mut samples = saga::SystemSamples::default();
    let fixed_rate = saga::fixed_rate(config, &mut samples, shutdown).await?;
    let rss_under_load = proc_status_bytes("/proc/self/status", "VmHWM:").unwrap_or(0);
    log(format!(
        "latency at {:.0}/s: accept p99 {:.1} ms, accept -> confirmed p50 {:.1} ms, p99 {:.1} ms; peak RSS {:.1} MB",
        fixed_rate.rate,
        fixed_rate.accept.p99,
        fixed_rate.confirmed_latency.p50,
        fixed_rate.confirmed_latency.p99,
        rss_under_load as f64 / 1024.0 / 1024.0
    ));

    let mut cost = Vec::new();
    for url in std::iter::once(None).chain(config.postgres_url.as_deref().map(Some)) {
        let exe = match &config.exe {
            Some(exe) => exe.clone(),
            None => std::env::current_exe().context("locating the orderflow binary")?,
        };
        let c = cost::measure(&exe, config.latency_rate, config.latency_duration, url).await?;
        log(format!(
            "cost per order at {:.0}/s on {}: system {:.0} µs + nats-server {:.0} µs CPU (load generator {:.0} µs); \
             {:.0} log bytes; system RSS {:.1} MB at start, {:.1} MB after warm-up, {:.1} MB at end; p99 {:.1} ms",
            c.rate,
            c.database,
            c.system_us,
            c.nats_us,
            c.load_us,
            c.log_bytes_per_order,
            c.system_rss.start as f64 / 1024.0 / 1024.0,
            c.system_rss.warm as f64 / 1024.0 / 1024.0,
            c.system_rss.end as f64 / 1024.0 / 1024.0,
            c.p99_ms
        ));
        cost.push(c);
    }

    let jetstream = jetstream::measure(config.messages, &log).await?;

    let mut saga_results = vec![saga::capacity(config, None, &mut samples, &log, shutdown).await?];
    if let Some(url) = config.postgres_url.as_deref().filter(|u| u.starts_with("postgres")) {
        saga_results.push(saga::capacity(config, Some(url), &mut samples, &log, shutdown).await?);
    }

    let express = saga::express_under_backlog(config, &mut samples, shutdown).await?;
    log(format!(
        "express under a backlog of {} standard orders (peak {}): express p50 {:.1} ms vs standard p50 {:.1} ms",
        express.burst, express.peak_backlog, express.express.p50, express.standard.p50
    ));

    let resources = Resources { peak_rss_under_load_bytes: rss_under_load, ..resources(&samples) };
    let sqlite_max = saga_results.first().map_or(0.0, |c| c.max_sustainable);
    let mut report = BenchReport {
        environment,
        saga_to_raw_publish_ratio: jetstream::ratio(sqlite_max, jetstream.raw_publish),
        jetstream,
        saga: saga_results,
        events_per_order: 4,
        fixed_rate,
        cost,
        express,
        resources,
        goals: Vec::new(),
        elapsed_seconds: 0.0,
    };
    report.goals = report::goals(&report);
    report.elapsed_seconds = started.elapsed().as_secs_f64();

    if let Some(dir) = &config.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = dir.join("bench.json");
        std::fs::write(&json, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", json.display()))?;
        let md = dir.join("bench.md");
        std::fs::write(&md, report.render_markdown()).with_context(|| format!("writing {}", md.display()))?;
        log(format!("wrote {} and {}", json.display(), md.display()));
    }
    Ok(report)
}

fn environment(quick: bool) -> Environment {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let os = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|v| format!("Linux {}", v.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.to_owned());
    let nats_server = orderflow_natsd::find_binary()
        .and_then(|b| orderflow_natsd::version_of(&b))
        .map(|v| v.to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Environment {
        orderflow_version: env!("CARGO_PKG_VERSION").to_owned(),
        build_profile: if cfg!(debug_assertions) { "debug" } else { "release" }.to_owned(),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        cpu,
        nats_server,
        os,
        started_at,
        quick,
        load_average_at_start: std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn resources(samples: &saga::SystemSamples) -> Resources {
    let exe = std::env::current_exe().ok();
    let binary_bytes = exe.as_ref().and_then(|p| std::fs::metadata(p).ok()).map_or(0, |m| m.len());
    Resources {
        peak_rss_under_load_bytes: 0,
        peak_rss_bytes: proc_status_bytes("/proc/self/status", "VmHWM:").unwrap_or(0),
        rss_at_end_bytes: proc_status_bytes("/proc/self/status", "VmRSS:").unwrap_or(0),
        nats_peak_rss_bytes: samples.nats_peak_rss,
        binary: exe
            .as_ref()
            .and_then(|p| p.file_name())
            .map_or_else(|| "unknown".to_owned(), |n| n.to_string_lossy().into_owned()),
        binary_bytes,
        ready_first_ms: samples.ready.first().copied().map_or(0.0, ms),
        ready_median_ms: ms(median(samples.ready.clone())),
        ready_max_ms: samples.ready.iter().copied().max().map_or(0.0, ms),
        systems_started: samples.ready.len(),
        nats_start_median_ms: ms(median(samples.nats_start.clone())),
    }
}

/// Flags of `orderflow bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Small counts: finishes in under a minute (a smoke test, not a measurement).
    #[arg(long)]
    quick: bool,
    /// Directory for bench.json and bench.md.
    #[arg(long, default_value = "bench-results")]
    out_dir: PathBuf,
    /// postgres://… to also measure the saga on PostgreSQL (fresh schemas, dropped afterwards).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

impl BenchArgs {
    /// Runs `orderflow bench` and prints the table.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut config = if self.quick { BenchConfig::quick() } else { BenchConfig::standard() };
        config.out_dir = Some(self.out_dir);
        config.postgres_url = self.database_url.filter(|u| !u.trim().is_empty());
        config.verbose = !self.quiet;
        let report = run_bench(&config, &shutdown).await?;
        crate::output::line(report.render_table())?;
        anyhow::ensure!(!shutdown.is_cancelled(), "interrupted");
        Ok(())
    }
}
