//! Builds the order service from its [`Settings`] and runs it until shutdown.

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use orderflow_events::EventKind;
use orderflow_messaging::{ConsumerHandle, ConsumerRuntime, ConsumerSpec, RuntimeConfig};
use orderflow_platform::http::{Health, HealthCheck};
use orderflow_platform::service::{Infra, InfraConfig, Running};
use orderflow_platform::{Db, Migration};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admission::{SagaBacklog, watch_saga_backlog};
use crate::configuration::Settings;
use crate::{handlers, routes};

/// The service's migrations.
pub const MIGRATIONS: &[Migration] =
    &[Migration { version: 100, description: "orders", sql: include_str!("../migrations/0100_orders.sql") }];

/// What routes and handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// Orders waiting for inventory, for admission control.
    pub saga_backlog: SagaBacklog,
    /// Admission bound on [`Self::saga_backlog`] (0: none).
    pub max_saga_backlog: u64,
}

/// A built, not yet running, order service.
#[derive(Debug)]
pub struct Application {
    settings: Settings,
    infra: Infra,
    listener: TcpListener,
    port: u16,
}

impl Application {
    /// Binds the listener (port 0 picks a free one), connects NATS, opens the database.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = orderflow_platform::http::bind(&settings.host, settings.port, "order-service").await?;
        let port = listener.local_addr()?.port();
        let infra = Infra::connect(InfraConfig {
            service: "order-service",
            nats_url: &settings.nats_url,
            database_url: &settings.database_url,
            db_schema: &settings.db_schema,
            migrations: MIGRATIONS,
            stream_replicas: settings.stream_replicas,
        })
        .await?;
        Ok(Self { settings, infra, listener, port })
    }

    /// The bound HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until `shutdown` is cancelled, then drains.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self { settings, infra, listener, .. } = self;
        let state = AppState {
            db: infra.db.clone(),
            saga_backlog: SagaBacklog::default(),
            max_saga_backlog: settings.max_saga_backlog,
        };
        if settings.max_saga_backlog > 0 {
            tokio::spawn(watch_saga_backlog(infra.js.clone(), state.saga_backlog.clone(), shutdown.clone()));
        }
        let runtime =
            RuntimeConfig { concurrency: settings.consumer_concurrency, ..RuntimeConfig::default() };
        let mut consumers: Vec<ConsumerHandle> = Vec::new();
        for express in [false, true] {
            let lane = |kind| ConsumerSpec::for_lane(crate::SERVICE, kind, express);
            let (s1, s2, s3) = (state.clone(), state.clone(), state.clone());
            consumers.extend([
                ConsumerRuntime::new(infra.js.clone(), lane(EventKind::InventoryRejected), move |d| {
                    handlers::inventory_rejected::handle(s1.clone(), d)
                })
                .with_config(runtime.clone())
                .spawn(shutdown.clone()),
                ConsumerRuntime::new(infra.js.clone(), lane(EventKind::PaymentsCompleted), move |d| {
                    handlers::payments_completed::handle(s2.clone(), d)
                })
                .with_config(runtime.clone())
                .spawn(shutdown.clone()),
                ConsumerRuntime::new(infra.js.clone(), lane(EventKind::PaymentsFailed), move |d| {
                    handlers::payments_failed::handle(s3.clone(), d)
                })
                .with_config(runtime.clone())
                .spawn(shutdown.clone()),
            ]);
        }
        let health: Health = infra.health().with(HealthCheck::consumers(
            consumers.iter().map(|c| (c.name().to_owned(), c.watch_state())).collect(),
        ));
        tokio::spawn(purge_idempotency_keys(state.db.clone(), shutdown.clone()));

        let router = Router::new()
            .route("/orders", post(routes::orders::create_order))
            .route("/orders/{id}", get(routes::orders::get_order))
            .route("/openapi.json", get(routes::openapi::openapi))
            .with_state(state);
        orderflow_platform::service::run(
            Running {
                infra,
                listener,
                router,
                health,
                consumers,
                shutdown_timeout: Duration::from_secs(settings.shutdown_timeout_secs),
                ready_drain_delay: Duration::from_millis(settings.ready_drain_delay_ms),
                micro_endpoints: Vec::new(),
            },
            shutdown,
        )
        .await
    }
}

/// Idempotency keys are kept 48 h (SPEC: at least 24 h), then deleted hourly.
async fn purge_idempotency_keys(db: Db, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let cutoff =
            orderflow_platform::format_rfc3339(time_now() - std::time::Duration::from_secs(48 * 3600));
        let purged = db
            .write(move |tx| {
                Box::pin(async move { crate::storage::purge_idempotency_keys(tx, &cutoff).await })
            })
            .await;
        match purged {
            Ok(n) if n > 0 => tracing::info!(deleted = n, "expired idempotency keys purged"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging idempotency keys failed"),
        }
    }
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
