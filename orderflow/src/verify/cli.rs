//! The configuration of a verify run and the flags of `orderflow verify` that make one: the
//! command's entry point (`--dry-run`, the run directory, the printed and JSON report).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::containers::{COMPOSE_INSTANCES, ContainersConfig};
use super::deployment::instance_names;
use super::{FaultFamily, Sabotage, plan, run_verify};
use crate::load;

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
    /// Draw faults from these families only (empty: the backend's default families).
    pub only: Vec<FaultFamily>,
    /// Attach to this running compose stack instead of starting processes (the containers
    /// backend); `database_url` must then be its PostgreSQL.
    pub containers: Option<ContainersConfig>,
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
            only: Vec::new(),
            containers: None,
        }
    }

    /// The families the schedule takes in turn: `only`, or the backend's default.
    pub fn families(&self) -> Vec<FaultFamily> {
        FaultFamily::chosen(&self.only, self.containers.is_some())
    }
}

/// Where the faults land.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// Processes the suite starts on loopback: a 3-node cluster and `orderflow serve` instances.
    Processes,
    /// The containers of a running deploy/compose.yaml stack, through the docker command.
    Containers,
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
    /// Draw the faults from these families only (repeat the flag for several); e.g. `--only nats`
    /// measures NATS node loss alone [default: all four families in turn].
    #[arg(long, value_enum)]
    only: Vec<FaultFamily>,
    /// Run the services from this `orderflow` binary instead of this one (e.g. to compare two
    /// builds under the same faults).
    #[arg(long, value_name = "PATH")]
    services_from: Option<PathBuf>,
    /// Print the fault schedule this seed gives and exit without starting anything.
    #[arg(long)]
    dry_run: bool,
    /// Where the faults land: processes the suite starts, or the containers of a running
    /// compose stack (adds network partitions, PostgreSQL kills and rolling restarts;
    /// deploy/docker/compose-smoke.sh --chaos runs it).
    #[arg(long, value_enum, default_value = "processes")]
    backend: BackendKind,
    /// Containers: the compose project to attach to.
    #[arg(long, env = "COMPOSE_PROJECT_NAME", default_value = "orderflow")]
    compose_project: String,
    /// Containers: the admin identity's NATS seed.
    #[arg(long, env = "NATS_CREDS", default_value = "deploy/nats/creds/admin.nk")]
    nats_creds: PathBuf,
    /// Containers: the CA of the NATS servers' certificates.
    #[arg(long, env = "NATS_CA", default_value = "deploy/nats/certs/ca.pem")]
    nats_ca: PathBuf,
    /// Containers: the stack's admin token.
    #[arg(long, env = "ORDERFLOW_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

impl VerifyArgs {
    /// Runs `orderflow verify`: prints the report, writes the JSON, fails on any violation.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let seed = self.seed.unwrap_or_else(|| fastrand::u64(..1_000_000));
        let containers = self.backend == BackendKind::Containers;
        if self.dry_run {
            let instances = if containers {
                COMPOSE_INSTANCES.iter().map(|s| (*s).to_owned()).collect()
            } else {
                instance_names(usize::from(self.instances))
            };
            let families = FaultFamily::chosen(&self.only, containers);
            let max_hold_ms = u64::try_from(self.max_hold.as_millis()).unwrap_or(u64::MAX);
            let mut out = format!("seed {seed}: {} faults over {:?}\n", self.faults, self.duration);
            for (i, fault) in plan(seed, self.faults, &families, &instances, max_hold_ms).iter().enumerate() {
                let at = self.duration.mul_f64((i as f64 + 0.5) / self.faults.max(1) as f64);
                out.push_str(&format!("  {:>3}  at {:>6.1} s  {fault}\n", i + 1, at.as_secs_f64()));
            }
            return crate::output::emit(&out);
        }
        let exe = match self.services_from {
            Some(path) => std::path::absolute(&path)
                .with_context(|| format!("resolving --services-from {}", path.display()))?,
            None => std::env::current_exe().context("locating the orderflow binary")?,
        };
        let (temp, data_dir) = match &self.data_dir {
            Some(dir) => (None, dir.clone()),
            // The stack keeps its own logs (docker logs) and volumes.
            None if containers => {
                (None, PathBuf::from(format!("docker-compose logs of project {}", self.compose_project)))
            }
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
        config.only = self.only;
        if containers {
            config.containers = Some(ContainersConfig {
                project: self.compose_project,
                nats_creds: self.nats_creds,
                nats_ca: Some(self.nats_ca),
                admin_token: self
                    .admin_token
                    .filter(|t| !t.is_empty())
                    .context("the containers backend needs the stack's ORDERFLOW_ADMIN_TOKEN")?,
            });
        }
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
