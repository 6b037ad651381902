//! `orderflow load`: drives orders through a running system (or one it starts) and measures
//! what the customer sees: the `202` latency and the time until the order's terminal event.
//!
//! The run sends on an open loop (a fixed rate; latency counts from each order's scheduled time,
//! so stalls are not hidden by coordinated omission) or a closed loop (N clients), matches every
//! accepted order to its `orders.confirmed` / `orders.cancelled` event on NATS, waits until the
//! system is quiet, and, when it started the system itself, checks the invariants. It owns no
//! part of the system: it only uses the public HTTP API, the admin `PUT /inventory/{id}` (to
//! restock) and core NATS subscriptions, and must never change service internals or state
//! beyond that.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use orderflow::load::{LoadConfig, Schedule, Target, Until, run_load};
//! use std::time::Duration;
//!
//! let mut config = LoadConfig::new(
//!     Target::Spawn { database_url: None },
//!     Schedule::Open { rate: 500.0 },
//!     Until::Elapsed(Duration::from_secs(10)),
//! );
//! config.restock = Some(10_000_000);
//! let report = run_load(&config, &tokio_util::sync::CancellationToken::new()).await?;
//! println!("{}", report.render());
//! # Ok(()) }
//! ```

mod config;
pub(crate) mod driver;
mod latency;
mod report;
pub(crate) mod run;
pub(crate) mod spawn;
pub(crate) mod tracker;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use orderflow_platform::http::Secret;
use tokio_util::sync::CancellationToken;

pub use config::{
    Endpoints, LoadConfig, LoadConfigError, OrderMix, ProductMix, QuantityRange, Schedule, Share, Target,
    Until, parse_duration,
};
pub use driver::Stats;
pub use latency::{Latency, Percentiles};
pub use report::{AnalyticsCheck, BacklogSample, Duplicates, InvariantSummary, Latencies, LoadReport};
pub use spawn::{SpawnedSystem, proc_status_bytes, restock_products_to};

/// Units per product that `--spawn` restocks to unless `--restock` says otherwise: enough that
/// no run sells out, so every order takes the saga's full path.
pub const SPAWN_RESTOCK: i64 = 100_000_000;

/// Runs one load test. A spawned system is stopped again before this returns.
pub async fn run_load(config: &LoadConfig, shutdown: &CancellationToken) -> anyhow::Result<LoadReport> {
    config.validate()?;
    match &config.target {
        Target::Running(endpoints) => {
            if let Some(units) = config.restock {
                let http = driver::http_client(config.request_timeout)?;
                let token = config.admin_token.as_ref().map(Secret::expose).context(
                    "restocking a running system needs its admin token (--admin-token or ORDERFLOW_ADMIN_TOKEN)",
                )?;
                restock_products_to(&http, &endpoints.inventory_url, token, config.mix.products.ids(), units)
                    .await?;
            }
            run::execute(
                config,
                endpoints,
                endpoints.order_url.clone(),
                None,
                config.analytics_url.as_deref(),
                shutdown,
            )
            .await
        }
        Target::Spawn { database_url } => {
            let mut spawned =
                SpawnedSystem::start(database_url.as_deref(), config.restock, config.mix.products.ids())
                    .await?;
            let label = format!("a spawned system ({})", spawned.system.database);
            let checker = config.check_invariants.then(|| run::Checker {
                targets: spawned.targets(),
                initial_stock: spawned.initial_stock.clone(),
            });
            let analytics = spawned.system.analytics_url.clone();
            let report = run::execute(
                config,
                &spawned.endpoints(),
                label,
                checker,
                Some(analytics.as_str()),
                shutdown,
            )
            .await;
            let stopped = spawned.stop().await;
            let mut report = report?;
            if let Err(e) = stopped {
                report.failures.push(format!("the spawned system did not stop cleanly: {e:#}"));
            }
            Ok(report)
        }
    }
}

/// Flags of `orderflow load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Start a throw-away system for the run (own nats-server, temporary data directory; SQLite,
    /// or fresh PostgreSQL schemas with --database-url) instead of loading a running one.
    #[arg(long)]
    spawn: bool,
    /// Order API of the running system.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    order_url: String,
    /// Inventory API of the running system (used by --restock).
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    inventory_url: String,
    /// NATS of the running system (`orderflow up` prints it), to watch terminal order events.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222", hide_env_values = true)]
    nats_url: String,
    /// Credentials or nkey seed file for NATS; default: `orderflow up`'s admin seed,
    /// `.orderflow/nats-creds/admin.nk`, when it exists.
    #[arg(long, env = "NATS_CREDS")]
    nats_creds: Option<std::path::PathBuf>,
    /// PEM file of the CA that signed the NATS servers' certificates, when they use TLS
    /// (`orderflow certs` writes one).
    #[arg(long, env = "NATS_CA")]
    nats_ca: Option<std::path::PathBuf>,
    /// With --spawn: postgres://… for PostgreSQL instead of SQLite.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Open loop: orders per second, sent on schedule whatever the system does [default: 500].
    #[arg(long, conflicts_with = "clients")]
    rate: Option<f64>,
    /// Closed loop: this many clients, each sending its next order when the last is answered.
    #[arg(long)]
    clients: Option<usize>,
    /// How long to send (500ms, 30s, 2m) [default: 30s].
    #[arg(long, value_parser = parse_duration, conflicts_with = "count")]
    duration: Option<Duration>,
    /// How many orders to send instead of a duration.
    #[arg(long)]
    count: Option<u64>,
    /// Products to order: a range `sku-001..sku-040` or a comma-separated list.
    #[arg(long, default_value = "sku-001..sku-040")]
    products: ProductMix,
    /// Quantity per order: N or A..B.
    #[arg(long, default_value = "1")]
    quantity: QuantityRange,
    /// Share of express orders.
    #[arg(long, default_value = "0.1")]
    express_share: Share,
    /// Share of orders re-sent with the same Idempotency-Key (the answer must name the same order).
    #[arg(long, default_value = "0.05")]
    duplicate_key_share: Share,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 1024)]
    max_inflight: usize,
    /// Timeout of one HTTP request.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    request_timeout: Duration,
    /// After sending, how long to wait for every accepted order to become terminal.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    drain_timeout: Duration,
    /// Fail when more than this share of requests fails.
    #[arg(long, default_value_t = 0.01)]
    max_error_rate: f64,
    /// Set every listed product to this many available units first (default with --spawn:
    /// 100000000, so that nothing sells out; 0 keeps the seeded stock).
    #[arg(long)]
    restock: Option<i64>,
    /// With --spawn: skip the invariant check after the run.
    #[arg(long)]
    no_invariants: bool,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// The running system's admin token, for --restock (`orderflow up` keeps it in
    /// `<data-dir>/admin-token`).
    #[arg(long, env = "ORDERFLOW_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<Secret>,
    /// The running system's analytics service: its counts over the run must equal the
    /// generator's (only meaningful when this run is the system's only traffic). `--spawn`
    /// always checks the spawned system's.
    #[arg(long)]
    analytics_url: Option<String>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

impl LoadArgs {
    /// The configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<LoadConfig> {
        let target = if self.spawn {
            Target::Spawn { database_url: self.database_url.clone().filter(|u| !u.trim().is_empty()) }
        } else {
            Target::Running(Endpoints {
                order_url: self.order_url.clone(),
                inventory_url: self.inventory_url.clone(),
                nats_url: self.nats_url.clone(),
                nats_creds: crate::nats::creds_or_up_default(self.nats_creds.clone()),
                nats_tls: orderflow_messaging::NatsTls {
                    ca_file: self.nats_ca.clone(),
                    ..Default::default()
                },
            })
        };
        let schedule = match (self.rate, self.clients) {
            (_, Some(clients)) => Schedule::Closed { clients },
            (rate, None) => Schedule::Open { rate: rate.unwrap_or(500.0) },
        };
        let until = match (self.count, self.duration) {
            (Some(n), _) => Until::Count(n),
            (None, d) => Until::Elapsed(d.unwrap_or(Duration::from_secs(30))),
        };
        let mut config = LoadConfig::new(target, schedule, until);
        config.mix = OrderMix {
            products: self.products.clone(),
            quantity: self.quantity,
            express_share: self.express_share,
            duplicate_key_share: self.duplicate_key_share,
        };
        config.max_inflight = self.max_inflight;
        config.request_timeout = self.request_timeout;
        config.drain_timeout = self.drain_timeout;
        config.max_error_rate = self.max_error_rate;
        config.check_invariants = self.spawn && !self.no_invariants;
        config.restock = match (self.restock, self.spawn) {
            (Some(0), _) => None,
            (Some(n), _) => Some(n),
            (None, true) => Some(SPAWN_RESTOCK),
            (None, false) => None,
        };
        config.progress = !self.quiet;
        config.analytics_url = self.analytics_url.clone().filter(|u| !u.trim().is_empty());
        config.admin_token = self.admin_token.clone();
        config.validate()?;
        Ok(config)
    }

    /// Runs `orderflow load`: prints the table, writes the JSON, fails when the run failed.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let config = self.config()?;
        let report = run_load(&config, &shutdown).await?;
        crate::output::line(report.render())?;
        if let Some(path) = &self.json_out {
            let json = serde_json::to_string_pretty(&report)?;
            std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        }
        anyhow::ensure!(report.passed(), "the load run failed: {}", report.failures.join("; "));
        Ok(())
    }
}
