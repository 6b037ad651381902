//! The order service's wiring on the kernel: its routes, its three consumers (both lanes each),
//! the saga-backlog watch for admission control, and the hourly purge of idempotency keys.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use orderflow_events::EventKind;
use orderflow_messaging::EventVersions;
use orderflow_platform::http::{ClientRateLimit, limit_per_client};
use orderflow_platform::kernel::{NoFlags, Service, Wiring};
use orderflow_platform::{Db, Migration};
use tokio_util::sync::CancellationToken;

use crate::admission::{SagaBacklog, watch_saga_backlog};
use crate::configuration::Settings;
use crate::{handlers, routes};

/// The service's migrations.
pub(crate) const MIGRATIONS: &[Migration] =
    &[Migration { version: 100, description: "orders", sql: include_str!("../migrations/0100_orders.sql") }];

/// What routes and handlers share.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    /// The database.
    pub(crate) db: Db,
    /// Orders waiting for inventory, for admission control.
    pub(crate) saga_backlog: SagaBacklog,
    /// Admission bound on [`Self::saga_backlog`] (0: none).
    pub(crate) max_saga_backlog: u64,
    /// The versions of `orders.created` it publishes.
    pub(crate) events: Arc<EventVersions>,
}

/// The order service, as the kernel runs it.
#[derive(Debug)]
pub struct OrderService;

/// A built, not yet running, order service.
pub type Application = orderflow_platform::kernel::Application<OrderService>;

impl Service for OrderService {
    const NAME: &'static str = "order-service";
    const SECTION: &'static str = crate::SERVICE;
    const MIGRATIONS: &'static [Migration] = MIGRATIONS;
    type Flags = NoFlags;
    type Settings = Settings;

    fn new(_: &Settings) -> anyhow::Result<Self> {
        Ok(Self)
    }

    fn wire(self, settings: &Settings, wiring: &mut Wiring) -> Router {
        let state = AppState {
            db: wiring.db().clone(),
            events: Arc::new(settings.common.events.clone()),
            saga_backlog: SagaBacklog::default(),
            max_saga_backlog: settings.max_saga_backlog,
        };
        if settings.max_saga_backlog > 0 {
            let (js, backlog) = (wiring.js().clone(), state.saga_backlog.clone());
            wiring.spawn(move |stop| watch_saga_backlog(js, backlog, stop));
        }
        let (s1, s2, s3) = (state.clone(), state.clone(), state.clone());
        wiring
            .consume(EventKind::InventoryRejected, move |d| {
                handlers::inventory_rejected::handle(s1.clone(), d)
            })
            .consume(EventKind::PaymentsCompleted, move |d| {
                handlers::payments_completed::handle(s2.clone(), d)
            })
            .consume(EventKind::PaymentsFailed, move |d| handlers::payments_failed::handle(s3.clone(), d));
        let db = state.db.clone();
        wiring.spawn(move |stop| purge_idempotency_keys(db, stop));

        let mut create_order = post(routes::orders::create_order);
        if let Some(limit) = ClientRateLimit::new(Self::NAME, settings.rate_limit) {
            create_order = create_order.layer(from_fn_with_state(limit, limit_per_client));
        }
        Router::new()
            .route("/orders", create_order)
            .route("/orders/{id}", get(routes::orders::get_order))
            .route("/openapi.json", get(routes::openapi::openapi))
            .route("/schemas/asyncapi.yaml", get(routes::schemas::asyncapi))
            .route("/schemas/{file}", get(routes::schemas::schema))
            .with_state(state)
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
