//! Cost per order: CPU time (utime + stime from `/proc`) per finished order, per process, at a
//! fixed rate, with the system and the load generator in processes of their own — `orderflow
//! up` (the services and gateway-sim), its nats-server, and `orderflow load` — so that each is
//! measured apart and the load generator's cost does not hide in the system's. Also: the
//! system's resident memory and how many log bytes it wrote per order.
//!
//! CPU per order is the figure to steer by on a shared machine: unlike orders/s, other work on
//! the machine barely moves it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use orderflow_platform::http::{ADMIN_TOKEN_ENV, AdminToken};
use serde::Serialize;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::load::proc_status_bytes;

/// What one fixed-rate run of the separate processes cost.
#[derive(Clone, Debug, Serialize)]
pub struct CostPerOrder {
    /// `SQLite` or `PostgreSQL`.
    pub database: String,
    /// Orders/s offered.
    pub rate: f64,
    /// Seconds sent.
    pub seconds: f64,
    /// Orders that reached a terminal state.
    pub orders: u64,
    /// Orders finished per second.
    pub completed_rate: f64,
    /// Accept → confirmed, p99 (ms).
    pub p99_ms: f64,
    /// CPU µs per order: the `orderflow up` process (three services and gateway-sim).
    pub system_us: f64,
    /// CPU µs per order: its nats-server.
    pub nats_us: f64,
    /// CPU µs per order: `orderflow load`.
    pub load_us: f64,
    /// System + nats-server (the load generator is the users, not the system).
    pub total_us: f64,
    /// Resident memory of `orderflow up` over the run.
    pub system_rss: RssOverTime,
    /// … of its nats-server.
    pub nats_rss: RssOverTime,
    /// … of `orderflow load`.
    pub load_rss: RssOverTime,
    /// Log bytes the system wrote per order (JSON lines, default level).
    pub log_bytes_per_order: f64,
}

/// Resident memory (`VmRSS`) of one process over a cost run, in bytes, sampled once a
/// second: growth after the warm-up is what a leak looks like.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RssOverTime {
    /// When the load started (for `orderflow load`: its first sample).
    pub start: u64,
    /// After the warm-up: the first sample a quarter of the way through the run (at least 5 s
    /// in, at most half-way), when connection buffers, caches and channels have reached their
    /// working size.
    pub warm: u64,
    /// The last sample, as the load ended.
    pub end: u64,
    /// The largest sample.
    pub peak: u64,
}

impl RssOverTime {
    fn sample(&mut self, bytes: u64, warm: bool) {
        if bytes == 0 {
            return; // the process is gone, or not yet readable
        }
        if self.start == 0 {
            self.start = bytes;
        }
        if warm && self.warm == 0 {
            self.warm = bytes;
        }
        self.end = bytes;
        self.peak = self.peak.max(bytes);
    }

    /// Growth from the warm-up to the end (bytes; negative when it shrank).
    pub fn growth_after_warmup(&self) -> i64 {
        self.end as i64 - self.warm as i64
    }
}

/// How often the cost run samples the processes' memory.
pub(crate) const RSS_EVERY: Duration = Duration::from_secs(1);

fn rss_of(pid: u32) -> u64 {
    proc_status_bytes(&format!("/proc/{pid}/status"), "VmRSS:").unwrap_or(0)
}

/// Runs `orderflow up` and `orderflow load --rate rate --duration seconds` as child processes
/// and measures them. `database_url`: PostgreSQL (fresh schemas) instead of SQLite files.
pub async fn measure(
    exe: &Path,
    rate: f64,
    duration: Duration,
    database_url: Option<&str>,
) -> anyhow::Result<CostPerOrder> {
    let dir = tempfile::Builder::new().prefix("orderflow-bench-cost-").tempdir()?;
    // Both processes get the run's admin token (load restocks with it).
    let token = AdminToken::generate().context("generating the run's admin token")?;
    let ports = Ports::free(token.expose())?;
    let log_path = dir.path().join("up.log");
    let suffix = format!("bench{}_{}", std::process::id(), fastrand::u32(..));
    let schemas = ["orders", "inventory", "payments", "analytics"].map(|s| format!("{s}_{suffix}"));
    let mut up = spawn_up(exe, dir.path(), &ports, database_url.map(|url| (url, &schemas)), &log_path)?;
    let result = measure_running(exe, dir.path(), &ports, &mut up, rate, duration, &log_path).await;
    stop(&mut up).await;
    if let Some(url) = database_url {
        for schema in &schemas {
            crate::load::spawn::drop_schema(url, schema).await;
        }
    }
    let mut cost = result?;
    cost.database = if database_url.is_some() { "PostgreSQL" } else { "SQLite" }.to_owned();
    Ok(cost)
}

async fn measure_running(
    exe: &Path,
    dir: &Path,
    ports: &Ports,
    up: &mut Child,
    rate: f64,
    duration: Duration,
    log_path: &Path,
) -> anyhow::Result<CostPerOrder> {
    let up_pid = up.id().context("orderflow up exited at once")?;
    wait_ready(ports, up).await?;
    let nats_pid = child_named(up_pid, "nats-server").context("finding orderflow up's nats-server")?;
    let (system_0, nats_0) = (cpu_ticks(up_pid)?, cpu_ticks(nats_pid)?);
    let log_0 = file_len(log_path);
    let (mut system_rss, mut nats_rss, mut load_rss) =
        (RssOverTime::default(), RssOverTime::default(), RssOverTime::default());
    let sample = |system: &mut RssOverTime, nats: &mut RssOverTime, warm: bool| {
        system.sample(rss_of(up_pid), warm);
        nats.sample(rss_of(nats_pid), warm);
    };
    sample(&mut system_rss, &mut nats_rss, false);

    let json = dir.join("load.json");
    let mut load = Command::new(exe)
        .arg("load")
        .args(["--order-url", &format!("http://127.0.0.1:{}", ports.order)])
        .args(["--inventory-url", &format!("http://127.0.0.1:{}", ports.inventory)])
        .args(["--nats-url", &format!("nats://127.0.0.1:{}", ports.nats)])
        // `up`'s server runs with auth on: watch the events as its admin identity.
        .arg("--nats-creds")
        .arg(dir.join("data").join("nats-creds").join("admin.nk"))
        .args(["--rate", &rate.to_string(), "--duration", &format!("{}ms", duration.as_millis())])
        .args(["--restock", &crate::load::SPAWN_RESTOCK.to_string(), "--quiet", "--json-out"])
        .arg(&json)
        .env(ADMIN_TOKEN_ENV, &ports.admin_token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("running orderflow load")?;
    let load_pid = load.id().unwrap_or(0);
    let started = Instant::now();
    // A quarter of the way, at least 5 s in, but never past half the run (a short run still
    // gets a sample after its start).
    let warm_after = (duration / 4).max(Duration::from_secs(5)).min(duration / 2);
    let mut every = tokio::time::interval(RSS_EVERY);
    let status = loop {
        tokio::select! {
            status = load.wait() => break status.context("waiting for orderflow load")?,
            _ = every.tick() => {
                let warm = started.elapsed() >= warm_after;
                sample(&mut system_rss, &mut nats_rss, warm);
                load_rss.sample(rss_of(load_pid), warm);
            }
        }
    };
    let (system_1, nats_1) = (cpu_ticks(up_pid)?, cpu_ticks(nats_pid)?);
    let log_1 = file_len(log_path);
    sample(&mut system_rss, &mut nats_rss, true);
    let text = std::fs::read_to_string(&json)
        .with_context(|| format!("orderflow load ({status}) wrote no report at {}", json.display()))?;
    let report: serde_json::Value = serde_json::from_str(&text).context("reading the load report")?;
    let number = |pointer: &str| report.pointer(pointer).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    let cancelled: f64 = report
        .get("cancelled")
        .and_then(serde_json::Value::as_object)
        .map_or(0.0, |m| m.values().filter_map(serde_json::Value::as_f64).sum());
    let orders = (number("/confirmed") + cancelled) as u64;
    if orders == 0 {
        bail!("no order finished in the cost run ({status})");
    }
    let per_order = |ticks: u64| ticks as f64 * 1e6 / clock_ticks_per_second() / orders as f64;
    let system_us = per_order(system_1.saturating_sub(system_0));
    let nats_us = per_order(nats_1.saturating_sub(nats_0));
    Ok(CostPerOrder {
        database: String::new(),
        rate,
        seconds: duration.as_secs_f64(),
        orders,
        completed_rate: number("/completed_rate"),
        p99_ms: number("/latency_ms/confirmed_standard/p99"),
        system_us,
        nats_us,
        load_us: number("/cpu_seconds") * 1e6 / orders as f64,
        total_us: system_us + nats_us,
        system_rss,
        nats_rss,
        load_rss,
        log_bytes_per_order: log_1.saturating_sub(log_0) as f64 / orders as f64,
    })
}

struct Ports {
    order: u16,
    inventory: u16,
    payment: u16,
    gateway: u16,
    analytics: u16,
    nats: u16,
    /// The admin token `up` and `load` share.
    admin_token: String,
}

impl Ports {
    fn free(admin_token: &str) -> anyhow::Result<Self> {
        let port = crate::verify::free_port;
        Ok(Self {
            order: port()?,
            inventory: port()?,
            payment: port()?,
            gateway: port()?,
            analytics: port()?,
            nats: port()?,
            admin_token: admin_token.to_owned(),
        })
    }
}

fn spawn_up(
    exe: &Path,
    dir: &Path,
    ports: &Ports,
    postgres: Option<(&str, &[String; 4])>,
    log_path: &Path,
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("up")
        .args(["--data-dir", &dir.join("data").display().to_string()])
        .args(["--order-port", &ports.order.to_string(), "--inventory-port", &ports.inventory.to_string()])
        .args(["--payment-port", &ports.payment.to_string(), "--gateway-port", &ports.gateway.to_string()])
        .args(["--analytics-port", &ports.analytics.to_string(), "--nats-port", &ports.nats.to_string()])
        .env(ADMIN_TOKEN_ENV, &ports.admin_token)
        // The production log format, at its default level: part of the cost.
        .env("LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .env_remove("NATS_URL")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    match postgres {
        Some((url, [orders, inventory, payments, analytics])) => {
            // Fresh schemas, so that the run starts from nothing as the SQLite one does.
            let config = dir.join("orderflow.toml");
            std::fs::write(
                &config,
                format!(
                    "[order]\ndb_schema = \"{orders}\"\n[inventory]\ndb_schema = \"{inventory}\"\n\
                     [payment]\ndb_schema = \"{payments}\"\n[analytics]\ndb_schema = \"{analytics}\"\n"
                ),
            )?;
            cmd.args(["--database-url", url]).arg("--config").arg(&config);
        }
        None => {
            cmd.env_remove("DATABASE_URL");
        }
    }
    cmd.spawn().context("starting orderflow up")
}

async fn wait_ready(ports: &Ports, up: &mut Child) -> anyhow::Result<()> {
    let http = orderflow_platform::tls::http_client_builder().timeout(Duration::from_secs(2)).build()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut ready = true;
        for port in [ports.order, ports.inventory, ports.payment, ports.analytics] {
            let url = format!("http://127.0.0.1:{port}/health/ready");
            ready &= http.get(&url).send().await.is_ok_and(|r| r.status().is_success());
        }
        if ready {
            return Ok(());
        }
        if let Some(status) = up.try_wait()? {
            bail!("orderflow up exited before it was ready ({status})");
        }
        if Instant::now() > deadline {
            bail!("orderflow up was not ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGINT (a clean drain), then SIGKILL after 30 s.
async fn stop(up: &mut Child) {
    if let Some(pid) = up.id() {
        let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status().await;
        if tokio::time::timeout(Duration::from_secs(30), up.wait()).await.is_ok() {
            return;
        }
    }
    let _ = up.kill().await;
}

/// utime + stime of `pid`, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).context("malformed /proc stat");
    Ok(field(11)? + field(12)?)
}

/// The CPU time this process has used so far, in seconds (Linux; `None` elsewhere).
pub fn own_cpu_seconds() -> Option<f64> {
    cpu_ticks(std::process::id()).ok().map(|t| t as f64 / clock_ticks_per_second())
}

/// `USER_HZ`: 100 on every Linux architecture this runs on.
fn clock_ticks_per_second() -> f64 {
    100.0
}

/// The pid of `parent`'s child process named `name`.
fn child_named(parent: u32, name: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if comm == name && ppid == Some(parent) {
            return Some(pid);
        }
    }
    None
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}
