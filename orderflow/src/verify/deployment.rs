//! The deployment a run starts and stops: the cluster, the service processes with their
//! configuration file and databases, the catalog they start with, and keeping them running.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use orderflow_messaging::{Topology, identity};
use orderflow_platform::http::{ADMIN_TOKEN_ENV, AdminToken};

use super::cluster::{self, Cluster, NODES, free_port};
use super::faults::UPGRADE_STAGES;
use super::procs::{Role, ServiceProc};
use super::{Deployment, FaultFamily, PLENTY, PRODUCTS, SCARCE, VerifyConfig};
use crate::invariants::{self, Targets};
use crate::load;
use crate::system::DbTarget;

/// Drops a run's PostgreSQL schemas.
pub(super) async fn drop_schemas(databases: &[DbTarget]) -> anyhow::Result<()> {
    for t in databases {
        let db = orderflow_platform::Db::open(&t.url, "public").await?;
        // Schema names are plain identifiers (Db::open checked them when the run started).
        let ddl = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", t.schema);
        sqlx::query(sqlx::AssertSqlSafe(ddl)).execute(db.pool()).await?;
        db.close().await;
    }
    Ok(())
}

impl Deployment {
    pub(super) async fn start(config: &VerifyConfig) -> anyhow::Result<Self> {
        let dir = &config.data_dir;
        let cluster = Cluster::start(&dir.join("nats")).await.context("starting the 3-node NATS cluster")?;
        let nats_url = cluster.url();
        tracing::info!(%nats_url, "NATS cluster formed");
        let client = cluster
            .admin_options()?
            .name("orderflow-verify")
            .connect(orderflow_messaging::connect::server_list(&nats_url).as_slice())
            .await
            .context("connecting to the cluster")?;
        let js = jetstream::new(client);
        // As deployed: the admin identity provisions (R3), every service binds with its own.
        orderflow_messaging::topology::provision(
            &js,
            &Topology::deployment(NODES).of_services(&["order", "inventory", "payment"]),
        )
        .await
        .context("provisioning JetStream as the admin identity")?;

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
        // Every instance gets the run's admin token through its environment, as production would.
        let admin_token =
            AdminToken::generate().context("generating the run's admin token")?.expose().to_owned();
        let token_env = || vec![(ADMIN_TOKEN_ENV.to_owned(), admin_token.clone())];
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
            token_env(),
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
            let mut env = token_env();
            env.push((
                "NATS_CREDS".to_owned(),
                identity::seed_file(&cluster.creds, role.as_str()).display().to_string(),
            ));
            if config.only.contains(&FaultFamily::Upgrade) {
                // A rolling upgrade starts where every deployment before v2 was.
                env.extend(UPGRADE_STAGES[0].env(role.as_str()));
            }
            procs.push(ServiceProc::new(&config.exe, role, index, port, args, env, &log_dir));
        }
        let http = orderflow_platform::tls::http_client_builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        let mut deployment = Self {
            cluster,
            procs,
            http,
            admin_token,
            js,
            databases,
            database_label,
            initial_stock: BTreeMap::new(),
            crashes: Vec::new(),
            memory: super::memory::MemoryLog::default(),
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
        // The admin provisioned the streams at 3 replicas; make sure they are.
        use orderflow_events::subjects::{
            STREAM_ADVISORIES, STREAM_DLQ, STREAM_INVENTORY, STREAM_ORDERS, STREAM_PAYMENTS,
        };
        for name in [STREAM_ORDERS, STREAM_INVENTORY, STREAM_PAYMENTS, STREAM_DLQ, STREAM_ADVISORIES] {
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
        load::restock_products_to(&self.http, &inventory, &self.admin_token, &plenty, PLENTY).await?;
        let scarce: Vec<String> = SCARCE.iter().map(|s| (*s).to_owned()).collect();
        load::restock_products_to(&self.http, &inventory, &self.admin_token, &scarce, 20).await?;
        let inventory_db = self.db(Role::Inventory)?;
        self.initial_stock = invariants::stock_totals(&inventory_db).await?;
        Ok(())
    }

    pub(super) fn url_of(&self, role: Role) -> anyhow::Result<String> {
        self.procs.iter().find(|p| p.role == role).map(ServiceProc::url).context("no such service instance")
    }

    pub(super) fn db(&self, role: Role) -> anyhow::Result<DbTarget> {
        self.databases.iter().find(|d| d.service == role.as_str()).cloned().context("no such database")
    }

    pub(super) fn targets(&self) -> anyhow::Result<Targets> {
        Ok(Targets {
            databases: self.databases.clone(),
            gateway_url: self.url_of(Role::Gateway)?,
            admin_token: self.admin_token.clone(),
            nats_url: self.cluster.url(),
            nats_creds: Some(self.cluster.admin_seed()),
        })
    }

    /// Notes (and forgets) instances that exited without being asked to.
    pub(super) fn note_crashes(&mut self) {
        for p in &mut self.procs {
            if let Some(status) = p.crashed() {
                let msg = format!("{} exited on its own with {status}; see {}", p.name, p.log().display());
                tracing::error!("{msg}");
                self.crashes.push(msg);
            }
        }
    }

    /// Starts whatever is not running (crashed instances, nodes left down by an error).
    /// Samples the resident memory of every running process, `at_s` after the load started.
    pub(super) fn sample_memory(&mut self, at_s: f64) {
        for p in &self.procs {
            self.memory.sample(&p.name, p.pid(), at_s);
        }
        for node in &self.cluster.nodes {
            self.memory.sample(&node.name, node.pid(), at_s);
        }
    }

    pub(super) async fn ensure_running(&mut self) {
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

    /// Stops every service instance (SIGTERM, then SIGKILL), then the cluster.
    pub(super) async fn stop(&mut self) {
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
pub(super) fn instance_names(instances: usize) -> Vec<String> {
    instance_plan(instances).into_iter().map(|(role, n)| format!("{}-{n}", role.as_str())).collect()
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
