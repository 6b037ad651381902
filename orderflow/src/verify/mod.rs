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
//!
//! With `--backend containers` (the `containers` module) the same schedule and checker run against a
//! `deploy/compose.yaml` stack that is already up: the faults become `docker` commands, and the
//! schedule adds what only containers allow — network partitions of NATS nodes, PostgreSQL
//! killed, rolling restarts under load with no failed client request.

mod backend;
mod cli;
mod cluster;
mod containers;
mod deployment;
mod faults;
mod inject;
mod memory;
mod procs;
mod report;
mod sabotage;
mod workload;

use std::collections::BTreeMap;

use anyhow::Context as _;
use async_nats::jetstream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use cli::{VerifyArgs, VerifyConfig};
pub use containers::ContainersConfig;
pub use faults::{Fault, FaultFamily, NodeChoice, UPGRADE_STAGES, UpgradeStage, plan};
pub use memory::MemoryRow;
pub use report::{FaultRecord, KindSummary, LoadSummary, Probe, VerifyReport, summarize};
pub use sabotage::Sabotage;

use crate::system::DbTarget;
use backend::Backend;
pub(crate) use cluster::free_port;

/// Runs the suite. Everything it started is stopped before it returns, whatever happened.
pub async fn run_verify(config: &VerifyConfig, shutdown: &CancellationToken) -> anyhow::Result<VerifyReport> {
    anyhow::ensure!(config.instances >= 2, "verify needs at least 2 instances of inventory and payment");
    anyhow::ensure!(config.rate > 0.0, "the rate must be positive");
    if config.containers.is_none() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
    }
    let started = Instant::now();
    for family in &config.only {
        anyhow::ensure!(
            family.supported_by(config.containers.is_some()),
            "the {} backend cannot inject the {family:?} family",
            if config.containers.is_some() { "containers" } else { "processes" }
        );
    }
    let mut deployment = match &config.containers {
        Some(containers) => Deployment::attach(config, containers).await?,
        None => Deployment::start(config).await?,
    };
    let result = deployment.exercise(config, shutdown).await;
    deployment.stop().await;
    let mut report = result?;
    if report.passed && config.database_url.is_some() && config.containers.is_none() {
        // A passed run leaves nothing behind; a failed one keeps its schemas as evidence.
        if let Err(e) = deployment::drop_schemas(&deployment.databases).await {
            tracing::warn!(error = %format!("{e:#}"), "could not drop the run's PostgreSQL schemas");
        }
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Everything a run started or attached to.
struct Deployment {
    backend: Backend,
    /// The NATS servers (comma-separated), as this process reaches them.
    nats_url: String,
    /// The admin identity's seed.
    nats_creds: std::path::PathBuf,
    /// TLS to NATS.
    nats_tls: orderflow_messaging::NatsTls,
    http: reqwest::Client,
    /// The run's admin token (every instance has it in `ORDERFLOW_ADMIN_TOKEN`).
    admin_token: String,
    js: jetstream::Context,
    databases: Vec<DbTarget>,
    database_label: String,
    initial_stock: BTreeMap<String, i64>,
    crashes: Vec<String>,
    memory: memory::MemoryLog,
}

/// Products the load orders; the last two are stocked low so that some orders are rejected.
const PRODUCTS: &str = "sku-001..sku-040";
const SCARCE: [&str; 2] = ["sku-039", "sku-040"];
const PLENTY: i64 = 10_000_000;
