//! The inventory service's wiring on the kernel: the demo catalog seeded once connected (when
//! asked), the three consumers (both lanes each), the `stock` request-reply endpoint and the
//! HTTP API.

use axum::Router;
use orderflow_events::{EventKind, ProductId};
use orderflow_platform::discovery::MicroEndpoint;
use orderflow_platform::kernel::{NoFlags, Service, Wiring};
use orderflow_platform::{Db, Migration};

use crate::configuration::Settings;
use crate::handlers::{OrdersCreatedHandler, PaymentsCompletedHandler, PaymentsFailedHandler};
use crate::routes;

/// The service's own migrations (the platform adds its outbox and inbox).
pub(crate) const MIGRATIONS: [Migration; 1] = [Migration {
    version: 100,
    description: "inventory products and reservations",
    sql: include_str!("../migrations/0100_inventory.sql"),
}];

/// What routes and handlers share.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    /// The service's database.
    pub(crate) db: Db,
}

/// The inventory service, as the kernel runs it.
#[derive(Debug)]
pub struct InventoryService;

/// A built, not yet running, inventory service.
pub type Application = orderflow_platform::kernel::Application<InventoryService>;

impl Service for InventoryService {
    const NAME: &'static str = "inventory-service";
    const SECTION: &'static str = crate::handlers::SERVICE;
    const MIGRATIONS: &'static [Migration] = &MIGRATIONS;
    type Flags = NoFlags;
    type Settings = Settings;

    fn new(_: &Settings) -> anyhow::Result<Self> {
        Ok(Self)
    }

    async fn on_connected(&self, settings: &Settings, db: &Db) -> anyhow::Result<()> {
        if settings.seed_demo_catalog {
            let created = crate::seed_demo_catalog(db).await?;
            tracing::info!(created, "demo catalog seeded");
        }
        Ok(())
    }

    fn wire(self, _: &Settings, wiring: &mut Wiring) -> Router {
        let db = wiring.db().clone();
        let state = AppState { db: db.clone() };
        wiring
            .consume(EventKind::OrdersCreated, OrdersCreatedHandler::new(state.clone()))
            .consume(EventKind::PaymentsCompleted, PaymentsCompletedHandler::new(state.clone()))
            .consume(EventKind::PaymentsFailed, PaymentsFailedHandler::new(state.clone()))
            .endpoint(stock_endpoint(db.clone()));
        if !wiring.admin().is_open_to_admins() {
            tracing::warn!(
                "no admin token is configured (ORDERFLOW_ADMIN_TOKEN or --admin-token): PUT /inventory/{{id}} \
                 answers 401 to everyone"
            );
        }
        routes::router(state, wiring.admin().clone())
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
