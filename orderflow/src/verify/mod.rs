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

mod cli;
mod cluster;
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
pub use faults::{Fault, FaultFamily, NodeChoice, UPGRADE_STAGES, UpgradeStage, plan};
pub use memory::MemoryRow;
pub use report::{FaultRecord, LoadSummary, Probe, VerifyReport};
pub use sabotage::Sabotage;

use crate::system::DbTarget;
use cluster::Cluster;
pub(crate) use cluster::free_port;
use procs::ServiceProc;

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
        if let Err(e) = deployment::drop_schemas(&deployment.databases).await {
            tracing::warn!(error = %format!("{e:#}"), "could not drop the run's PostgreSQL schemas");
        }
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Everything a run started.
struct Deployment {
    cluster: Cluster,
    procs: Vec<ServiceProc>,
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
