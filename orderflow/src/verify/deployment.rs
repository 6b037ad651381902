//! The deployment a run starts and stops: the cluster, the service processes with their
//! configuration file and databases, the catalog they start with, and keeping them running.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use orderflow_messaging::{Topology, identity};
use orderflow_platform::http::{ADMIN_TOKEN_ENV, AdminToken};

use super::backend::{Backend, Processes};
use super::cluster::{self, Cluster, NODES, free_port};
use super::containers::{Containers, ContainersConfig};
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
        let nats_creds = cluster.admin_seed();
        let mut deployment = Self {
            backend: Backend::Processes(Processes { cluster, procs }),
            nats_url,
            nats_creds,
            nats_tls: Default::default(),
            http: http_client()?,
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

    /// Attaches to a running compose stack (the containers backend): its NATS as the admin
    /// identity (what `nats-provision` provisioned), its PostgreSQL, every instance ready.
    pub(super) async fn attach(config: &VerifyConfig, containers: &ContainersConfig) -> anyhow::Result<Self> {
        let database_url = config
            .database_url
            .clone()
            .context("the containers backend needs the stack's --database-url (its published PostgreSQL)")?;
        let stack = Containers::attach(containers, &database_url).await?;
        let nats_url = stack.nats_url();
        let nats_tls = stack.tls().clone();
        tracing::info!(project = %containers.project, %nats_url, "attached to the compose stack");
        let client = orderflow_messaging::connect::tool_options(Some(&containers.nats_creds), &nats_tls)?
            .name("orderflow-verify")
            .connect(orderflow_messaging::connect::server_list(&nats_url).as_slice())
            .await
            .with_context(|| format!("connecting to the stack's NATS at {nats_url}"))?;
        let databases: Vec<DbTarget> = [
            ("order", order_service::Settings::default().common.db_schema),
            ("inventory", inventory_service::Settings::default().common.db_schema),
            ("payment", payment_service::Settings::default().common.db_schema),
        ]
        .into_iter()
        .map(|(service, schema)| DbTarget { service, url: database_url.clone(), schema })
        .collect();
        let mut deployment = Self {
            backend: Backend::Containers(Box::new(stack)),
            nats_url,
            nats_creds: containers.nats_creds.clone(),
            nats_tls,
            http: http_client()?,
            admin_token: containers.admin_token.clone(),
            js: jetstream::new(client),
            databases,
            database_label: format!(
                "PostgreSQL container of {} ({}; schemas orders, inventory, payments)",
                containers.project,
                orderflow_platform::db::redact(&database_url)
            ),
            initial_stock: BTreeMap::new(),
            crashes: Vec::new(),
            memory: super::memory::MemoryLog::default(),
        };
        deployment.start_services().await?;
        Ok(deployment)
    }

    /// One at a time: the first instance of a service migrates its database (and inventory
    /// seeds the catalog) before the others open it. (A compose stack's instances run already:
    /// each must be ready.)
    async fn start_services(&mut self) -> anyhow::Result<()> {
        for name in self.backend.instance_names() {
            if matches!(self.backend, Backend::Containers(_)) {
                self.backend.wait_ready(&name, &self.http).await?;
            } else {
                self.backend.start_instance(&name, &self.http).await?;
            }
            tracing::info!(instance = %name, "ready");
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
        self.backend.url_of(role)
    }

    pub(super) fn db(&self, role: Role) -> anyhow::Result<DbTarget> {
        self.databases.iter().find(|d| d.service == role.as_str()).cloned().context("no such database")
    }

    pub(super) fn targets(&self) -> anyhow::Result<Targets> {
        Ok(Targets {
            databases: self.databases.clone(),
            gateway_url: self.url_of(Role::Gateway)?,
            admin_token: self.admin_token.clone(),
            nats_url: self.nats_url.clone(),
            nats_creds: Some(self.nats_creds.clone()),
            nats_tls: self.nats_tls.clone(),
        })
    }

    /// Notes (and forgets) instances that exited without being asked to.
    pub(super) async fn note_crashes(&mut self) {
        for msg in self.backend.note_crashes().await {
            tracing::error!("{msg}");
            self.crashes.push(msg);
        }
    }

    /// Samples the resident memory of every running process, `at_s` after the load started.
    pub(super) fn sample_memory(&mut self, at_s: f64) {
        for (name, pid) in self.backend.pids() {
            self.memory.sample(&name, pid, at_s);
        }
    }

    /// Starts whatever is not running (crashed instances, nodes left down by an error).
    pub(super) async fn ensure_running(&mut self) {
        self.note_crashes().await;
        let errors = self.backend.ensure_running(&self.http).await;
        self.crashes.extend(errors);
    }

    /// Stops every service instance (SIGTERM, then SIGKILL), then the cluster; a compose stack
    /// is left running, healed.
    pub(super) async fn stop(&mut self) {
        self.backend.stop(&self.http).await;
    }
}

/// The suite's HTTP client.
fn http_client() -> anyhow::Result<reqwest::Client> {
    orderflow_platform::tls::http_client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")
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
