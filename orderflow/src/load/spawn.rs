//! A throw-away system for a load run or a benchmark step: its own nats-server and a temporary
//! data directory (SQLite files), or fresh PostgreSQL schemas that are dropped again on stop.
//! Starting it measures how long the services take to become ready once NATS is up.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use orderflow_natsd::{NatsServer, Options};
use serde::Deserialize;
use tempfile::TempDir;
use tokio::time::Instant;

use super::config::Endpoints;
use crate::invariants::{self, Targets};
use crate::system::{System, Tune, UpOptions};

/// A running throw-away system.
#[derive(Debug)]
pub struct SpawnedSystem {
    /// The system.
    pub system: System,
    /// How long the nats-server took to accept clients.
    pub nats_start: Duration,
    /// From `System::start` (NATS already up) until every service answered `/health/ready` with
    /// `200`.
    pub ready_after: Duration,
    /// available + reserved + committed per product after seeding and restocking.
    pub initial_stock: BTreeMap<String, i64>,
    nats: Option<NatsServer>,
    postgres: bool,
    _dir: TempDir,
}

#[derive(Deserialize)]
struct Product {
    unit_price_cents: i64,
}

impl SpawnedSystem {
    /// Starts NATS, then the system (SQLite unless `database_url` is `postgres://…`), waits for
    /// readiness, and restocks `restock_products` to `restock` available units each.
    pub async fn start(
        database_url: Option<&str>,
        restock: Option<i64>,
        restock_products: &[String],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("orderflow-load-").tempdir()?;
        let store = dir.path().join("nats");
        let t0 = Instant::now();
        let nats = tokio::task::spawn_blocking(move || NatsServer::start(Options::new(store)))
            .await?
            .context("starting a nats-server for the run")?;
        let nats_start = t0.elapsed();
        let postgres = database_url.is_some_and(|u| u.starts_with("postgres"));
        let suffix = format!("_load_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let t1 = Instant::now();
        let system = System::start(UpOptions {
            database_url: postgres.then(|| database_url.unwrap_or_default().to_owned()),
            tune: Some(Tune { db_schema_suffix: postgres.then_some(suffix), ..Tune::default() }),
            ..UpOptions::ephemeral(dir.path().to_path_buf(), nats.url())
        })
        .await?;
        let mut spawned = Self {
            system,
            nats_start,
            ready_after: Duration::ZERO,
            initial_stock: BTreeMap::new(),
            nats: Some(nats),
            postgres,
            _dir: dir,
        };
        let http = super::driver::http_client(Duration::from_secs(10))?;
        let prepared = async {
            spawned.wait_ready(&http, Duration::from_secs(60)).await?;
            spawned.ready_after = t1.elapsed();
            if let Some(units) = restock {
                let (url, token) = (&spawned.system.inventory_url, &spawned.system.admin_token);
                restock_products_to(&http, url, token, restock_products, units).await?;
            }
            let inventory = spawned
                .system
                .databases
                .iter()
                .find(|d| d.service == "inventory")
                .context("no inventory database")?;
            spawned.initial_stock = invariants::stock_totals(inventory).await?;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = prepared {
            spawned.stop().await.ok();
            return Err(e);
        }
        Ok(spawned)
    }

    async fn wait_ready(&self, http: &reqwest::Client, limit: Duration) -> anyhow::Result<()> {
        let s = &self.system;
        let deadline = Instant::now() + limit;
        for base in [&s.order_url, &s.inventory_url, &s.payment_url, &s.gateway_url] {
            let url = format!("{base}/health/ready");
            loop {
                match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => break,
                    _ if Instant::now() > deadline => anyhow::bail!("{url} not ready after {limit:?}"),
                    _ => tokio::time::sleep(Duration::from_millis(2)).await,
                }
            }
        }
        Ok(())
    }

    /// Where to send orders.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            order_url: self.system.order_url.clone(),
            inventory_url: self.system.inventory_url.clone(),
            nats_url: self.system.nats_url.clone(),
            nats_creds: self.system.admin_creds(),
            nats_tls: Default::default(),
        }
    }

    /// What the invariant checker reads.
    pub fn targets(&self) -> Targets {
        Targets {
            databases: self.system.databases.clone(),
            gateway_url: self.system.gateway_url.clone(),
            admin_token: self.system.admin_token.clone(),
            nats_url: self.system.nats_url.clone(),
            nats_creds: self.system.admin_creds(),
            nats_tls: Default::default(),
        }
    }

    /// Peak resident memory of the nats-server child (`VmHWM`), if readable.
    pub fn nats_peak_rss(&self) -> Option<u64> {
        let pid = self.nats.as_ref()?.pid()?;
        proc_status_bytes(&format!("/proc/{pid}/status"), "VmHWM:")
    }

    /// Drains and stops the services, stops NATS, drops the PostgreSQL schemas.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let stopped = self.system.stop().await;
        if let Some(mut nats) = self.nats.take() {
            tokio::task::spawn_blocking(move || nats.stop(Duration::from_secs(10))).await?;
        }
        if self.postgres {
            for db in &self.system.databases {
                drop_schema(&db.url, &db.schema).await;
            }
        }
        stopped
    }
}

/// Sets every product of `products` that exists to `units` available, keeping its price
/// (`PUT /inventory/{id}` with the admin token).
pub async fn restock_products_to(
    http: &reqwest::Client,
    inventory_url: &str,
    admin_token: &str,
    products: &[String],
    units: i64,
) -> anyhow::Result<usize> {
    let mut restocked = 0;
    for id in products {
        let url = format!("{}/inventory/{id}", inventory_url.trim_end_matches('/'));
        let res = http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
        if res.status() == reqwest::StatusCode::NOT_FOUND {
            continue;
        }
        anyhow::ensure!(res.status().is_success(), "GET {url}: HTTP {}", res.status());
        let p: Product = res.json().await.with_context(|| format!("GET {url}"))?;
        let res = http
            .put(&url)
            .bearer_auth(admin_token)
            .json(&serde_json::json!({"available": units, "unit_price_cents": p.unit_price_cents}))
            .send()
            .await
            .with_context(|| format!("PUT {url}"))?;
        anyhow::ensure!(res.status().is_success(), "PUT {url}: HTTP {}", res.status());
        restocked += 1;
    }
    Ok(restocked)
}

/// Drops a throw-away run's PostgreSQL schema; a failure is logged, not returned.
pub(crate) async fn drop_schema(url: &str, schema: &str) {
    let dropped = async {
        let conn = orderflow_platform::Db::open(url, schema).await?;
        let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(conn.pool()).await?;
        conn.close().await;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = dropped {
        tracing::warn!(schema, error = %e, "could not drop a throw-away run's schema");
    }
}

/// A `kB` line of a `/proc/…/status` file, in bytes.
pub fn proc_status_bytes(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}
