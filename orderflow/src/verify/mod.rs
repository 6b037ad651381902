//! `orderflow verify`: a fault-injection suite that proves the invariants of SPEC.md on a
//! 3-node JetStream cluster.
//!
//! One run:
//! 1. starts three nats-server nodes on loopback from `deploy/nats/cluster.conf` (streams at 3
//!    replicas, `sync_interval: always`);
//! 2. starts the gateway simulator, `--instances` inventory and payment instances sharing their
//!    durable consumers and databases, and one order service, each its own process
//!    (`orderflow serve <role>`), on SQLite files or PostgreSQL schemas of their own;
//! 3. runs the load driver (`orderflow load`'s open loop) and, meanwhile, a seeded schedule of
//!    faults ([`faults::plan`]): SIGKILL of every service instance in turn, SIGSTOP / SIGKILL
//!    of NATS nodes (the stream leader among them), gateway outages, error bursts and slow
//!    answers, and duplicate-delivery storms. After each fault is healed a probe order measures
//!    the time until the system completes orders again;
//! 4. waits until the system is quiet and checks the five invariants from the databases, the
//!    gateway's charge records and the DLQ ([`crate::invariants`]);
//! 5. stops every process it started (by pid; on failure and Ctrl-C too) and reports.
//!
//! Every wait is bounded; every process listens on 127.0.0.1 only.

mod cluster;
mod faults;
mod procs;
mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use serde::Deserialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use faults::{Fault, NodeChoice, plan};
pub use report::{FaultRecord, LoadSummary, Probe, VerifyReport};

use crate::invariants::{self, Targets, Violation};
use crate::load::{self, Endpoints, LoadConfig, QuantityRange, Schedule, Target, Until};
use crate::system::DbTarget;
use cluster::Cluster;
pub(crate) use cluster::free_port;
use procs::{Role, ServiceProc};

/// A deliberate corruption applied after quiescence and before the check, to prove the suite
/// fails when an invariant is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Sabotage {
    /// What a reservation-commit handler that applied an order twice leaves behind: one more
    /// unit committed on a product than its reservations account for (invariant 2).
    DoubleApply,
    /// A confirmed order put back to `pending` (invariant 1).
    StuckOrder,
}

/// One verify run.
#[derive(Clone, Debug)]
pub struct VerifyConfig {
    /// The `orderflow` binary the services run from (`orderflow serve <role>`).
    pub exe: PathBuf,
    /// How long the load runs; the faults are spread over it.
    pub duration: Duration,
    /// How many faults.
    pub faults: usize,
    /// Seed of the schedule.
    pub seed: u64,
    /// Orders per second.
    pub rate: f64,
    /// Instances of inventory and of payment (at least 2).
    pub instances: usize,
    /// `postgres://…`; `None` uses SQLite files.
    pub database_url: Option<String>,
    /// Where logs, databases and NATS stores go.
    pub data_dir: PathBuf,
    /// After a fault is healed, how long the system may take to complete a probe order.
    pub recovery_timeout: Duration,
    /// After the load, how long the system may take to become quiet.
    pub quiet_timeout: Duration,
    /// Longest fault.
    pub max_hold: Duration,
    /// Payment: how long an order may wait for the gateway (SPEC default 5 min; short here so
    /// that gateway outages also exercise the `payment_unavailable` compensation).
    pub payment_max_wait: Duration,
    /// Break an invariant on purpose before the check.
    pub sabotage: Option<Sabotage>,
}

impl VerifyConfig {
    /// A run of `duration` with `faults` faults and the suite's defaults for the rest.
    pub fn new(exe: PathBuf, data_dir: PathBuf, duration: Duration, faults: usize, seed: u64) -> Self {
        Self {
            exe,
            duration,
            faults,
            seed,
            rate: 50.0,
            instances: 2,
            database_url: None,
            data_dir,
            recovery_timeout: Duration::from_secs(60),
            quiet_timeout: Duration::from_secs(120),
            max_hold: Duration::from_secs(15),
            payment_max_wait: Duration::from_secs(10),
            sabotage: None,
        }
    }
}

/// Flags of `orderflow verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// How long the load runs (faults are spread over it): 90s, 10m.
    #[arg(long, value_parser = load::parse_duration, default_value = "2m")]
    duration: Duration,
    /// How many faults to inject.
    #[arg(long, default_value_t = 8)]
    faults: usize,
    /// Seed of the fault schedule [default: random, printed].
    #[arg(long)]
    seed: Option<u64>,
    /// Orders per second (open loop).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Instances of the inventory and of the payment service.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(2..=8))]
    instances: u16,
    /// postgres://… to use PostgreSQL (fresh schemas per run) instead of SQLite files.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Where logs, databases and NATS stores go [default: a temporary directory, removed when
    /// the run passes].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, default_value = "verify-report.json")]
    json_out: PathBuf,
    /// How long the system may take to complete an order after a fault is healed.
    #[arg(long, value_parser = load::parse_duration, default_value = "60s")]
    recovery_timeout: Duration,
    /// How long the system may take to become quiet after the load.
    #[arg(long, value_parser = load::parse_duration, default_value = "120s")]
    quiet_timeout: Duration,
    /// Longest fault (kill, freeze, outage).
    #[arg(long, value_parser = load::parse_duration, default_value = "15s")]
    max_hold: Duration,
    /// Payment max wait for the gateway before an order fails with payment_unavailable.
    #[arg(long, value_parser = load::parse_duration, default_value = "10s")]
    payment_max_wait: Duration,
    /// Break an invariant on purpose before the check (shows that the suite fails).
    #[arg(long, value_enum)]
    sabotage: Option<Sabotage>,
    /// Print the fault schedule this seed gives and exit without starting anything.
    #[arg(long)]
    dry_run: bool,
}

impl VerifyArgs {
    /// Runs `orderflow verify`: prints the report, writes the JSON, fails on any violation.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let seed = self.seed.unwrap_or_else(|| fastrand::u64(..1_000_000));
        if self.dry_run {
            let instances = instance_names(usize::from(self.instances));
            let max_hold_ms = u64::try_from(self.max_hold.as_millis()).unwrap_or(u64::MAX);
            let mut out = format!("seed {seed}: {} faults over {:?}\n", self.faults, self.duration);
            for (i, fault) in plan(seed, self.faults, &instances, max_hold_ms).iter().enumerate() {
                let at = self.duration.mul_f64((i as f64 + 0.5) / self.faults.max(1) as f64);
                out.push_str(&format!("  {:>3}  at {:>6.1} s  {fault}\n", i + 1, at.as_secs_f64()));
            }
            return crate::output::emit(&out);
        }
        let exe = std::env::current_exe().context("locating the orderflow binary")?;
        let (temp, data_dir) = match &self.data_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let temp = tempfile::Builder::new().prefix("orderflow-verify-").tempdir()?;
                let dir = temp.path().to_path_buf();
                (Some(temp), dir)
            }
        };
        let mut config = VerifyConfig::new(exe, data_dir, self.duration, self.faults, seed);
        config.rate = self.rate;
        config.instances = usize::from(self.instances);
        config.database_url = self.database_url.filter(|u| !u.trim().is_empty());
        config.recovery_timeout = self.recovery_timeout;
        config.quiet_timeout = self.quiet_timeout;
        config.max_hold = self.max_hold;
        config.payment_max_wait = self.payment_max_wait;
        config.sabotage = self.sabotage;
        tracing::info!(seed, faults = config.faults, duration = ?config.duration, "verify starting");
        let report = match run_verify(&config, &shutdown).await {
            Ok(report) => report,
            Err(e) => {
                if let Some(t) = temp {
                    eprintln!("logs, databases and NATS stores kept in {}", t.keep().display());
                }
                return Err(e);
            }
        };
        crate::output::line(report.render())?;
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(&self.json_out, json)
            .with_context(|| format!("writing {}", self.json_out.display()))?;
        crate::output::line(format_args!("report written to {}", self.json_out.display()))?;
        if report.passed {
            if let Some(t) = temp {
                crate::output::line(format_args!(
                    "the run passed: its directory {} is removed",
                    t.path().display()
                ))?;
            }
            Ok(())
        } else {
            if let Some(t) = temp {
                // Keep the evidence of a failed run.
                let kept = t.keep();
                eprintln!("logs, databases and NATS stores kept in {}", kept.display());
            }
            let names: Vec<String> =
                report.check.violations.iter().take(20).map(ToString::to_string).collect();
            anyhow::bail!(
                "verify failed: {} violation(s), {} failure(s){}{}",
                report.check.violations.len(),
                report.failures.len(),
                if names.is_empty() { String::new() } else { format!("\n  {}", names.join("\n  ")) },
                if report.failures.is_empty() {
                    String::new()
                } else {
                    format!("\n  {}", report.failures.join("\n  "))
                }
            )
        }
    }
}

/// Runs the suite. Everything it started is stopped before it returns, whatever happened.
pub async fn run_verify(config: &VerifyConfig, shutdown: &CancellationToken) -> anyhow::Result<VerifyReport> {
    anyhow::ensure!(config.instances >= 2, "verify needs at least 2 instances of inventory and payment");
    anyhow::ensure!(config.rate > 0.0, "the rate must be positive");
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let started = Instant::now();
    let mut deployment = Deployment::start(config).await?;
    let result = deployment.exercise(config, shutdown).await;
    deployment.stop().await;
    let mut report = result?;
    if report.passed && config.database_url.is_some() {
        // A passed run leaves nothing behind; a failed one keeps its schemas as evidence.
        if let Err(e) = drop_schemas(&deployment.databases).await {
            tracing::warn!(error = %format!("{e:#}"), "could not drop the run's PostgreSQL schemas");
        }
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

async fn drop_schemas(databases: &[DbTarget]) -> anyhow::Result<()> {
    for t in databases {
        let db = orderflow_platform::Db::open(&t.url, "public").await?;
        // Schema names are plain identifiers (Db::open checked them when the run started).
        let ddl = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", t.schema);
        sqlx::query(sqlx::AssertSqlSafe(ddl)).execute(db.pool()).await?;
        db.close().await;
    }
    Ok(())
}

/// Everything a run started.
struct Deployment {
    cluster: Cluster,
    procs: Vec<ServiceProc>,
    http: reqwest::Client,
    js: jetstream::Context,
    databases: Vec<DbTarget>,
    database_label: String,
    initial_stock: BTreeMap<String, i64>,
    crashes: Vec<String>,
}

/// Products the load orders; the last two are stocked low so that some orders are rejected.
const PRODUCTS: &str = "sku-001..sku-040";
const SCARCE: [&str; 2] = ["sku-039", "sku-040"];
const PLENTY: i64 = 10_000_000;

impl Deployment {
    async fn start(config: &VerifyConfig) -> anyhow::Result<Self> {
        let dir = &config.data_dir;
        let cluster = Cluster::start(&dir.join("nats")).await.context("starting the 3-node NATS cluster")?;
        let nats_url = cluster.url();
        tracing::info!(%nats_url, "NATS cluster formed");
        let client = async_nats::ConnectOptions::new()
            .name("orderflow-verify")
            .connect(orderflow_messaging::connect::server_list(&nats_url).as_slice())
            .await
            .context("connecting to the cluster")?;
        let js = jetstream::new(client);

        // Databases: one per service, shared by that service's instances.
        let suffix = format!("_verify_{}_{}", config.seed, std::process::id());
        let schemas = [
            ("order", order_service::Settings::default().common.db_schema),
            ("inventory", inventory_service::Settings::default().common.db_schema),
            ("payment", payment_service::Settings::default().common.db_schema),
        ];
        let abs = std::path::absolute(dir).context("resolving the data directory")?;
        let databases: Vec<DbTarget> = schemas
            .into_iter()
            .map(|(service, schema)| match &config.database_url {
                Some(url) => DbTarget { service, url: url.clone(), schema: format!("{schema}{suffix}") },
                None => DbTarget {
                    service,
                    url: format!("sqlite://{}", abs.join(format!("{service}.db")).display()),
                    schema,
                },
            })
            .collect();
        let database_label = match &config.database_url {
            Some(url) => format!("PostgreSQL {} (schemas *{suffix})", orderflow_platform::db::redact(url)),
            None => format!("SQLite files in {}", abs.display()),
        };
        let db_of = |service: &str| databases.iter().find(|d| d.service == service).cloned();

        let gateway_port = free_port()?;
        let config_file = dir.join("verify.toml");
        write_config(&config_file, config, gateway_port, &databases)?;
        let config_arg = config_file.display().to_string();
        let log_dir = dir.join("logs");
        std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;

        let mut procs = Vec::new();
        procs.push(ServiceProc::new(
            &config.exe,
            Role::Gateway,
            1,
            gateway_port,
            vec![
                "--port".into(),
                gateway_port.to_string(),
                "--config".into(),
                config_arg.clone(),
                "--data-dir".into(),
                abs.join("gateway").display().to_string(),
            ],
            vec![],
            &log_dir,
        ));
        for (role, index) in instance_plan(config.instances) {
            let db = db_of(role.as_str()).context("no database for a role")?;
            let port = free_port()?;
            let args = vec![
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string(),
                "--nats-url".into(),
                nats_url.clone(),
                "--database-url".into(),
                db.url.clone(),
                "--config".into(),
                config_arg.clone(),
            ];
            procs.push(ServiceProc::new(&config.exe, role, index, port, args, vec![], &log_dir));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        let mut deployment = Self {
            cluster,
            procs,
            http,
            js,
            databases,
            database_label,
            initial_stock: BTreeMap::new(),
            crashes: Vec::new(),
        };
        if let Err(e) = deployment.start_services().await {
            deployment.stop().await;
            return Err(e);
        }
        Ok(deployment)
    }

    /// One at a time: the first instance of a service migrates its database (and inventory
    /// seeds the catalog) before the others open it.
    async fn start_services(&mut self) -> anyhow::Result<()> {
        for p in &mut self.procs {
            p.start(&self.http, Duration::from_secs(60)).await?;
            tracing::info!(instance = %p.name, pid = ?p.pid(), url = %p.url(), "started");
        }
        // The services provisioned the streams from `stream_replicas = 3`; make sure they did.
        use orderflow_events::subjects::{STREAM_DLQ, STREAM_INVENTORY, STREAM_ORDERS, STREAM_PAYMENTS};
        for name in [STREAM_ORDERS, STREAM_INVENTORY, STREAM_PAYMENTS, STREAM_DLQ] {
            let mut stream = self.js.get_stream(name).await.with_context(|| format!("stream {name}"))?;
            let replicas =
                stream.info().await.with_context(|| format!("stream {name} info"))?.config.num_replicas;
            anyhow::ensure!(
                replicas == cluster::NODES,
                "stream {name} has {replicas} replicas, not {}",
                cluster::NODES
            );
        }
        let inventory = self.url_of(Role::Inventory)?;
        let ids = load::ProductMix::parse(PRODUCTS)?;
        let plenty: Vec<String> =
            ids.ids().iter().filter(|id| !SCARCE.contains(&id.as_str())).cloned().collect();
        load::restock_products_to(&self.http, &inventory, &plenty, PLENTY).await?;
        let scarce: Vec<String> = SCARCE.iter().map(|s| (*s).to_owned()).collect();
        load::restock_products_to(&self.http, &inventory, &scarce, 20).await?;
        let inventory_db = self.db(Role::Inventory)?;
        self.initial_stock = invariants::stock_totals(&inventory_db).await?;
        Ok(())
    }

    fn url_of(&self, role: Role) -> anyhow::Result<String> {
        self.procs.iter().find(|p| p.role == role).map(ServiceProc::url).context("no such service instance")
    }

    fn db(&self, role: Role) -> anyhow::Result<DbTarget> {
        self.databases.iter().find(|d| d.service == role.as_str()).cloned().context("no such database")
    }

    fn targets(&self) -> anyhow::Result<Targets> {
        Ok(Targets {
            databases: self.databases.clone(),
            gateway_url: self.url_of(Role::Gateway)?,
            nats_url: self.cluster.url(),
        })
    }

    async fn exercise(
        &mut self,
        config: &VerifyConfig,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<VerifyReport> {
        let instances = instance_names(config.instances);
        let max_hold_ms = u64::try_from(config.max_hold.as_millis()).unwrap_or(u64::MAX);
        let schedule = plan(config.seed, config.faults, &instances, max_hold_ms);

        let mut load_config = LoadConfig::new(
            Target::Running(Endpoints {
                order_url: self.url_of(Role::Order)?,
                inventory_url: self.url_of(Role::Inventory)?,
                nats_url: self.cluster.url(),
            }),
            Schedule::Open { rate: config.rate },
            Until::Elapsed(config.duration),
        );
        load_config.mix.products = load::ProductMix::parse(PRODUCTS)?;
        load_config.mix.quantity = QuantityRange::parse("1..3")?;
        load_config.max_error_rate = 1.0;
        load_config.check_invariants = false;
        load_config.keep_accepted_ids = true;
        load_config.request_timeout = Duration::from_secs(10);
        load_config.drain_timeout = Duration::from_secs(5);
        load_config.max_inflight = 256;

        let load_start = Instant::now();
        let (load_report, fault_records) = tokio::join!(
            load::run_load(&load_config, shutdown),
            self.run_faults(&schedule, load_start, config, shutdown)
        );
        let load_report = load_report.context("the load driver failed")?;
        let load_ended = Instant::now();

        let mut failures = Vec::new();
        // Whatever died on its own or is still down comes back before the check.
        self.ensure_running().await;
        if let Err(e) = self.clear_gateway_faults().await {
            failures.push(format!("could not clear the gateway faults: {e:#}"));
        }
        failures.extend(self.crashes.iter().cloned());
        for f in &fault_records {
            if f.recovered_after_ms.is_none() {
                failures.push(format!(
                    "fault {} ({}) on {}: no order completed within {:?} after it was healed{}",
                    f.index + 1,
                    f.description,
                    f.target,
                    config.recovery_timeout,
                    f.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
                ));
            }
        }
        if shutdown.is_cancelled() {
            failures.push("interrupted".to_owned());
        }

        let targets = self.targets()?;
        // Ctrl-C: check what is there now instead of waiting for the system to settle.
        let quiet_timeout =
            if shutdown.is_cancelled() { Duration::from_secs(1) } else { config.quiet_timeout };
        let quiet_after_s = match invariants::wait_until_quiet(&targets, quiet_timeout).await {
            Ok(()) => Some(load_ended.elapsed().as_secs_f64()),
            Err(e) => {
                failures.push(format!("{e:#}"));
                None
            }
        };
        let sabotage = match config.sabotage {
            Some(s) => Some(self.sabotage(s).await?),
            None => None,
        };
        let mut accepted = load_report.accepted_ids.clone();
        accepted.extend(fault_records.iter().filter_map(|f| f.probe.as_ref()).map(|p| p.order_id.clone()));
        let mut checked = invariants::check(&targets, &accepted, Some(&self.initial_stock)).await?;
        if load_report.duplicates.mismatched > 0 {
            checked.violations.push(Violation {
                invariant: 0,
                subject: "Idempotency-Key".into(),
                detail: format!(
                    "{} re-sends with the same key named a different order",
                    load_report.duplicates.mismatched
                ),
            });
        }
        if load_report.accepted == 0 {
            failures.push("no order was accepted".into());
        }

        let mut report = VerifyReport {
            passed: false,
            seed: config.seed,
            duration_s: config.duration.as_secs_f64(),
            elapsed_s: 0.0,
            database: self.database_label.clone(),
            nats: format!(
                "3-node cluster on 127.0.0.1 ({}), streams at 3 replicas, sync_interval always",
                self.cluster.url()
            ),
            instances: self.procs.iter().map(|p| format!("{} (started {}×)", p.name, p.starts)).collect(),
            load: LoadSummary {
                rate: config.rate,
                sent: load_report.sent,
                accepted: load_report.accepted,
                errors: load_report.errors,
                error_kinds: load_report.error_kinds.clone(),
                duplicate_key_resends: load_report.duplicates.sent,
                duplicate_key_mismatched: load_report.duplicates.mismatched,
                p99_confirmed_ms: load_report.latency_ms.confirmed_standard.p99,
            },
            probes: fault_records.iter().filter(|f| f.probe.is_some()).count(),
            check: checked,
            faults_injected: fault_records.len(),
            max_recovery_ms: fault_records.iter().filter_map(|f| f.recovered_after_ms).max(),
            faults: fault_records,
            quiet_after_s,
            sabotage,
            failures,
            data_dir: config.data_dir.display().to_string(),
        };
        report.passed = report.check.violations.is_empty() && report.failures.is_empty();
        Ok(report)
    }

    /// Injects the schedule, spread evenly over the load's duration, one fault at a time.
    async fn run_faults(
        &mut self,
        schedule: &[Fault],
        start: Instant,
        config: &VerifyConfig,
        shutdown: &CancellationToken,
    ) -> Vec<FaultRecord> {
        let mut records = Vec::new();
        let n = schedule.len().max(1) as f64;
        for (i, fault) in schedule.iter().enumerate() {
            let due = start + config.duration.mul_f64((i as f64 + 0.5) / n);
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = shutdown.cancelled() => break,
            }
            self.note_crashes();
            let record = self.inject(i, fault, start, config).await;
            match &record.recovered_after_ms {
                Some(ms) => {
                    tracing::info!(fault = i + 1, what = %record.description, target = %record.target, recovered_ms = ms, "fault healed, system recovered")
                }
                None => {
                    tracing::warn!(fault = i + 1, what = %record.description, target = %record.target, error = ?record.error, "fault healed, system did NOT recover")
                }
            }
            records.push(record);
        }
        records
    }

    /// Notes (and forgets) instances that exited without being asked to.
    fn note_crashes(&mut self) {
        for p in &mut self.procs {
            if let Some(status) = p.crashed() {
                let msg = format!("{} exited on its own with {status}; see {}", p.name, p.log().display());
                tracing::error!("{msg}");
                self.crashes.push(msg);
            }
        }
    }

    /// Starts whatever is not running (crashed instances, nodes left down by an error).
    async fn ensure_running(&mut self) {
        self.note_crashes();
        for i in 0..self.cluster.nodes.len() {
            if self.cluster.nodes[i].paused
                && let Err(e) = self.cluster.resume(i)
            {
                self.crashes.push(format!("{e:#}"));
            }
            if self.cluster.nodes[i].down
                && let Err(e) = self.cluster.restart(i).await
            {
                self.crashes.push(format!("{e:#}"));
            }
        }
        for p in &mut self.procs {
            if !p.is_running()
                && let Err(e) = p.start(&self.http, Duration::from_secs(60)).await
            {
                self.crashes.push(format!("{e:#}"));
            }
        }
    }

    async fn inject(
        &mut self,
        index: usize,
        fault: &Fault,
        start: Instant,
        config: &VerifyConfig,
    ) -> FaultRecord {
        let mut record = FaultRecord {
            index,
            at_s: start.elapsed().as_secs_f64(),
            fault: fault.clone(),
            description: fault.to_string(),
            target: String::new(),
            held_ms: fault.hold_ms(),
            recovered_after_ms: None,
            probe: None,
            detail: None,
            error: None,
        };
        tracing::info!(fault = index + 1, what = %record.description, "injecting");
        let hold = Duration::from_millis(fault.hold_ms());
        let injected = match fault {
            Fault::KillService { instance, .. } => self.kill_service(instance, hold, &mut record).await,
            Fault::PauseNats { node, .. } => self.pause_nats(*node, hold, &mut record).await,
            Fault::KillNats { node, .. } => self.kill_nats(*node, hold, &mut record).await,
            Fault::GatewayOutage { .. } | Fault::GatewayErrors { .. } | Fault::GatewaySlow { .. } => {
                record.target = "gateway-1".into();
                self.gateway_fault(fault, hold).await
            }
            Fault::DuplicateStorm { per_stream } => {
                record.target = "ORDERS, INVENTORY, PAYMENTS".into();
                match storm(&self.js, *per_stream, index).await {
                    Ok(detail) => {
                        record.detail = Some(detail);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        let healed = Instant::now();
        if let Err(e) = injected {
            record.error = Some(format!("{e:#}"));
            // Bring back whatever the failed step left down before probing.
            self.ensure_running().await;
        }
        match self.probe(config.seed, index, healed + config.recovery_timeout).await {
            Ok(outcome) => {
                record.recovered_after_ms =
                    Some(u64::try_from(healed.elapsed().as_millis()).unwrap_or(u64::MAX));
                record.probe = Some(outcome);
            }
            Err(e) => {
                let e = format!("probe: {e:#}");
                record.error = Some(match record.error.take() {
                    Some(prev) => format!("{prev}; {e}"),
                    None => e,
                });
            }
        }
        record
    }

    async fn kill_service(
        &mut self,
        instance: &str,
        down: Duration,
        record: &mut FaultRecord,
    ) -> anyhow::Result<()> {
        let http = self.http.clone();
        let p = self
            .procs
            .iter_mut()
            .find(|p| p.name == instance)
            .with_context(|| format!("no instance {instance}"))?;
        record.target =
            format!("{instance} (pid {})", p.pid().map_or_else(|| "-".into(), |pid| pid.to_string()));
        p.kill().await;
        tokio::time::sleep(down).await;
        p.start(&http, Duration::from_secs(60)).await
    }

    /// The ORDERS stream's leader now, or a node that is not it.
    async fn pick_node(&self, choice: NodeChoice) -> (usize, String) {
        let leader = self.cluster.stream_leader(&self.js, orderflow_events::subjects::STREAM_ORDERS).await;
        let i = match (choice, leader) {
            (NodeChoice::Leader, Some(l)) => l,
            (NodeChoice::Follower, Some(l)) => (l + 1) % self.cluster.nodes.len(),
            // No leader known (an election is under way): any node.
            (_, None) => 0,
        };
        let role = match (choice, leader) {
            (_, None) => "no ORDERS leader known",
            (NodeChoice::Leader, _) => "leader of ORDERS",
            (NodeChoice::Follower, _) => "follower of ORDERS",
        };
        (i, format!("{} ({role})", self.cluster.nodes[i].name))
    }

    async fn pause_nats(
        &mut self,
        choice: NodeChoice,
        hold: Duration,
        record: &mut FaultRecord,
    ) -> anyhow::Result<()> {
        let (i, target) = self.pick_node(choice).await;
        record.target = target;
        self.cluster.pause(i)?;
        tokio::time::sleep(hold).await;
        self.cluster.resume(i)
    }

    async fn kill_nats(
        &mut self,
        choice: NodeChoice,
        down: Duration,
        record: &mut FaultRecord,
    ) -> anyhow::Result<()> {
        let (i, target) = self.pick_node(choice).await;
        record.target = target;
        self.cluster.kill(i);
        tokio::time::sleep(down).await;
        self.cluster.restart(i).await?;
        self.cluster.wait_formed(Duration::from_secs(30)).await
    }

    /// Sets the gateway fault, holds it, clears it again.
    async fn gateway_fault(&self, fault: &Fault, hold: Duration) -> anyhow::Result<()> {
        let (on, off) = fault.gateway_patches().context("not a gateway fault")?;
        let url = format!("{}/admin/faults", self.url_of(Role::Gateway)?);
        put_json(&self.http, &url, &on).await?;
        tokio::time::sleep(hold).await;
        put_json(&self.http, &url, &off).await
    }

    async fn clear_gateway_faults(&self) -> anyhow::Result<()> {
        let url = format!("{}/admin/faults", self.url_of(Role::Gateway)?);
        put_json(&self.http, &url, &serde_json::json!({"outage": false, "error_rate": 0.0, "latency_ms": 0}))
            .await
    }

    /// Places an express order and waits until it is confirmed or cancelled: the system works
    /// again.
    async fn probe(&self, seed: u64, index: usize, deadline: Instant) -> anyhow::Result<Probe> {
        let order_url = self.url_of(Role::Order)?;
        let key = format!("verify-{seed}-{}-probe-{index}", std::process::id());
        let body = serde_json::json!({
            "customer_id": "verify-probe",
            "items": [{"product_id": "sku-001", "quantity": 1}],
            "priority": "express",
        });
        #[derive(Deserialize)]
        struct Created {
            order_id: String,
        }
        #[derive(Deserialize)]
        struct View {
            status: String,
        }
        let mut last = String::from("no answer yet");
        let order_id = loop {
            anyhow::ensure!(Instant::now() < deadline, "the probe order was not accepted: {last}");
            match self
                .http
                .post(format!("{order_url}/orders"))
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
                .await
            {
                Ok(res) if res.status().is_success() => match res.json::<Created>().await {
                    Ok(c) => break c.order_id,
                    Err(e) => last = format!("unreadable answer: {e}"),
                },
                Ok(res) => last = format!("HTTP {}", res.status()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        loop {
            anyhow::ensure!(Instant::now() < deadline, "probe order {order_id} still not terminal: {last}");
            match self.http.get(format!("{order_url}/orders/{order_id}")).send().await {
                Ok(res) if res.status().is_success() => match res.json::<View>().await {
                    Ok(v) if v.status == "confirmed" || v.status == "cancelled" => {
                        return Ok(Probe { order_id, status: v.status });
                    }
                    Ok(v) => last = v.status,
                    Err(e) => last = format!("unreadable answer: {e}"),
                },
                Ok(res) => last = format!("HTTP {}", res.status()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn sabotage(&self, what: Sabotage) -> anyhow::Result<String> {
        match what {
            Sabotage::DoubleApply => {
                let db = self.open_db(Role::Inventory).await?;
                let product = inventory_service::audit::sabotage::double_apply(&db).await;
                db.close().await;
                let product = product?.context("nothing to tamper with: no product has sold stock")?;
                Ok(format!("double-apply: one more unit of {product} committed than its reservations hold"))
            }
            Sabotage::StuckOrder => {
                let db = self.open_db(Role::Order).await?;
                let order = order_service::audit::sabotage::stuck_order(&db).await;
                db.close().await;
                let order = order?.context("nothing to tamper with: no order is confirmed")?;
                Ok(format!("stuck-order: order {order} put back to pending"))
            }
        }
    }

    /// `role`'s database, opened as a tool opens it (no migrations).
    async fn open_db(&self, role: Role) -> anyhow::Result<orderflow_platform::Db> {
        let t = self.db(role)?;
        Ok(orderflow_platform::Db::open(&t.url, &t.schema).await?)
    }

    /// Stops every service instance (SIGTERM, then SIGKILL), then the cluster.
    async fn stop(&mut self) {
        for p in self.procs.iter_mut().rev() {
            p.stop(Duration::from_secs(15)).await;
        }
        self.cluster.stop().await;
    }
}

/// The instances a run starts besides the gateway, in start order: `(role, index)`.
fn instance_plan(instances: usize) -> Vec<(Role, usize)> {
    let roles = std::iter::repeat_n(Role::Inventory, instances)
        .chain(std::iter::repeat_n(Role::Payment, instances))
        .chain([Role::Order]);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    roles
        .map(|role| {
            let n = counts.entry(role.as_str()).and_modify(|n| *n += 1).or_insert(1);
            (role, *n)
        })
        .collect()
}

/// Their names (what the faults target): `inventory-1`, …
fn instance_names(instances: usize) -> Vec<String> {
    instance_plan(instances).into_iter().map(|(role, n)| format!("{}-{n}", role.as_str())).collect()
}

/// Re-publishes the last `per_stream` events of each stream; returns what happened.
async fn storm(js: &jetstream::Context, per_stream: usize, index: usize) -> anyhow::Result<String> {
    use orderflow_events::subjects::{STREAM_INVENTORY, STREAM_ORDERS, STREAM_PAYMENTS};
    let (mut sent, mut dropped, mut stored) = (0_u64, 0_u64, 0_u64);
    for name in [STREAM_ORDERS, STREAM_INVENTORY, STREAM_PAYMENTS] {
        let mut stream = js.get_stream(name).await.with_context(|| format!("stream {name}"))?;
        let state = stream.info().await.with_context(|| format!("stream {name} info"))?.state.clone();
        if state.messages == 0 {
            continue;
        }
        let first = state.first_sequence.max(state.last_sequence.saturating_sub(per_stream as u64 - 1));
        for seq in first..=state.last_sequence {
            let Ok(message) = stream.get_raw_message(seq).await else { continue };
            let mut headers = message.headers.clone();
            let original = headers.get(async_nats::header::NATS_MESSAGE_ID).map(|v| v.as_str().to_owned());
            match original {
                // Half keep their id: inside the dedup window JetStream must drop them.
                Some(_) if seq % 2 == 0 => {}
                // Half get a new one, as a duplicate that arrives after the window would.
                other => headers.insert(
                    async_nats::header::NATS_MESSAGE_ID,
                    format!("{}:storm-{index}", other.unwrap_or_else(|| format!("{name}-{seq}"))).as_str(),
                ),
            }
            let ack = js
                .send_publish(
                    message.subject.clone(),
                    jetstream::message::PublishMessage::build()
                        .headers(headers)
                        .payload(message.payload.clone()),
                )
                .await
                .with_context(|| format!("re-publishing {name} #{seq}"))?
                .await
                .with_context(|| format!("re-publishing {name} #{seq}"))?;
            sent += 1;
            if ack.duplicate {
                dropped += 1;
            } else {
                stored += 1;
            }
        }
    }
    Ok(format!(
        "{sent} events re-published: {dropped} dropped by JetStream as duplicates, {stored} delivered again"
    ))
}

async fn put_json(http: &reqwest::Client, url: &str, body: &serde_json::Value) -> anyhow::Result<()> {
    let res = http.put(url).json(body).send().await.with_context(|| format!("PUT {url}"))?;
    anyhow::ensure!(res.status().is_success(), "PUT {url}: HTTP {}", res.status());
    Ok(())
}

/// The configuration file every instance reads (top-level keys for all, a section per service).
fn write_config(
    path: &Path,
    config: &VerifyConfig,
    gateway_port: u16,
    databases: &[DbTarget],
) -> anyhow::Result<()> {
    let schema = |service: &str| {
        databases.iter().find(|d| d.service == service).map(|d| d.schema.clone()).unwrap_or_default()
    };
    let text = format!(
        "# Written by `orderflow verify` for this run.\n\
         stream_replicas = 3\n\
         shutdown_timeout_secs = 10\n\
         \n\
         [order]\n\
         db_schema = \"{order}\"\n\
         \n\
         [inventory]\n\
         db_schema = \"{inventory}\"\n\
         seed_demo_catalog = true\n\
         \n\
         [payment]\n\
         db_schema = \"{payment}\"\n\
         gateway_url = \"http://127.0.0.1:{gateway_port}\"\n\
         max_wait_secs = {max_wait}\n\
         gateway_timeout_ms = 2000\n\
         breaker_open_ms = 2000\n\
         \n\
         [gateway]\n\
         host = \"127.0.0.1\"\n\
         seed = {seed}\n\
         \n\
         [gateway.faults]\n\
         decline_rate = 0.02\n",
        order = schema("order"),
        inventory = schema("inventory"),
        payment = schema("payment"),
        max_wait = config.payment_max_wait.as_secs().max(1),
        seed = config.seed,
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
