//! Builds the service from [`Settings`] and runs it until a shutdown token is cancelled.
//!
//! [`Application::build`] does everything that can fail at start-up (bind, connect, migrate,
//! provision) so that a misconfiguration fails before anything runs;
//! [`Application::run_until_stopped`] runs the HTTP API, the six consumers and the outbox relay,
//! and drains them in order when asked to stop.

use anyhow::Context as _;
use orderflow_events::ProductId;
use orderflow_platform::Db;
use orderflow_platform::discovery::MicroEndpoint;
use orderflow_platform::http::HealthCheck;
use orderflow_platform::service::{Infra, InfraConfig, Running};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::configuration::Settings;
use crate::handlers::{self, HandlerContext};
use crate::routes::{self, AppState};

/// The service's own migrations (the platform adds its outbox and inbox).
pub const MIGRATIONS: [orderflow_platform::Migration; 1] = [orderflow_platform::Migration {
    version: 100,
    description: "inventory products and reservations",
    sql: include_str!("../migrations/0100_inventory.sql"),
}];

/// A built, not yet running, inventory service.
#[derive(Debug)]
pub struct Application {
    settings: Settings,
    listener: TcpListener,
    port: u16,
    infra: Infra,
}

impl Application {
    /// Binds the HTTP listener (port 0 allowed), opens and migrates the DB, connects NATS (with
    /// the messaging crate's backoff), provisions JetStream, and seeds the demo catalog when
    /// `seed_demo_catalog` is set.
    ///
    /// # Errors
    /// The port is taken, NATS stays unreachable, the database cannot be opened or migrated, or
    /// provisioning fails.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener =
            orderflow_platform::http::bind(&settings.host, settings.port, "inventory-service").await?;
        let port = listener.local_addr().context("reading the bound HTTP address")?.port();
        let infra = Infra::connect(InfraConfig {
            service: "inventory-service",
            nats_url: &settings.nats_url,
            database_url: &settings.database_url,
            db_schema: &settings.db_schema,
            migrations: &MIGRATIONS,
            stream_replicas: settings.stream_replicas,
        })
        .await?;
        if settings.seed_demo_catalog {
            let created = crate::seed_demo_catalog(&infra.db).await.context("seeding the demo catalog")?;
            tracing::info!(created, "demo catalog seeded");
        }
        tracing::info!(port, settings = ?settings, "inventory-service built");
        Ok(Self { settings, listener, port, infra })
    }

    /// The bound HTTP port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The service's database (to seed or inspect it in process).
    #[must_use]
    pub fn db(&self) -> &Db {
        &self.infra.db
    }

    /// Serves HTTP, runs the consumers (standard + express lanes) and the outbox relay until
    /// `shutdown` is cancelled, then drains them in order (see `orderflow_platform::service`).
    ///
    /// # Errors
    /// The HTTP server failed, or the drain did not finish before the deadline.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self { settings, listener, infra, .. } = self;
        let ctx = HandlerContext { db: infra.db.clone() };
        let consumers = handlers::spawn_all(&infra.js, &ctx, &settings.runtime_config(), &shutdown);
        let states = consumers.iter().map(|c| (c.name().to_owned(), c.watch_state())).collect();
        let health = infra.health().with(HealthCheck::consumers(states));
        let router = routes::router(AppState { db: infra.db.clone() });
        let infra_db = infra.db.clone();
        orderflow_platform::service::run(
            Running {
                infra,
                listener,
                router,
                health,
                consumers,
                shutdown_timeout: settings.shutdown_timeout(),
                ready_drain_delay: std::time::Duration::from_millis(settings.ready_drain_delay_ms),
                micro_endpoints: vec![stock_endpoint(infra_db)],
            },
            shutdown,
        )
        .await
    }
}

/// `orderflow.inventory.stock`: a product id in, the product's stock as JSON out.
fn stock_endpoint(db: Db) -> MicroEndpoint {
    MicroEndpoint::new("stock", move |payload| {
        let db = db.clone();
        async move {
            let text = std::str::from_utf8(&payload).map_err(|_| "the product id is not UTF-8".to_owned())?;
            let id = ProductId::parse(text.trim()).map_err(|e| format!("invalid product id: {e}"))?;
            let wanted = id.clone();
            let product = db
                .read(move |tx| Box::pin(async move { crate::storage::products::find(tx, &wanted).await }))
                .await
                .map_err(|e| e.to_string())?;
            let product = product.ok_or_else(|| format!("no product {id}"))?;
            serde_json::to_vec(&product).map(Into::into).map_err(|e| e.to_string())
        }
    })
}
