//! The analytics service's wiring on the kernel: one fold handler on the eight events (both
//! lanes each), the live summary task and the HTTP API.

use axum::Router;
use orderflow_events::v2::{InventoryRejected, OrderCancelled, OrderCreated};
use orderflow_events::{
    EventKind, InventoryReleased, InventoryReserved, OrderConfirmed, PaymentCompleted, PaymentFailed,
};
use orderflow_platform::Migration;
use orderflow_platform::kernel::{NoFlags, Service, Wiring};

use crate::configuration::Settings;
use crate::handlers::FoldHandler;
use crate::routes::{self, AppState};

/// The service's migrations (the platform adds its outbox and inbox).
pub const MIGRATIONS: [Migration; 1] = [Migration {
    version: 100,
    description: "analytics read model",
    sql: include_str!("../migrations/0100_analytics.sql"),
}];

/// The analytics service, as the kernel runs it.
#[derive(Debug)]
pub struct AnalyticsService;

/// A built, not yet running, analytics service.
pub type Application = orderflow_platform::kernel::Application<AnalyticsService>;

impl Service for AnalyticsService {
    const NAME: &'static str = "analytics-service";
    const SECTION: &'static str = crate::SECTION;
    const MIGRATIONS: &'static [Migration] = &MIGRATIONS;
    type Flags = NoFlags;
    type Settings = Settings;

    fn new(settings: &Settings) -> anyhow::Result<Self> {
        anyhow::ensure!(settings.max_watchers > 0, "max_watchers must be at least 1");
        Ok(Self)
    }

    fn wire(self, settings: &Settings, wiring: &mut Wiring) -> Router {
        let db = wiring.db().clone();
        let fold = FoldHandler::new(db.clone());
        wiring
            .consume::<OrderCreated, _>(EventKind::OrdersCreated, fold.clone())
            .consume::<OrderConfirmed, _>(EventKind::OrdersConfirmed, fold.clone())
            .consume::<OrderCancelled, _>(EventKind::OrdersCancelled, fold.clone())
            .consume::<InventoryReserved, _>(EventKind::InventoryReserved, fold.clone())
            .consume::<InventoryRejected, _>(EventKind::InventoryRejected, fold.clone())
            .consume::<InventoryReleased, _>(EventKind::InventoryReleased, fold.clone())
            .consume::<PaymentCompleted, _>(EventKind::PaymentsCompleted, fold.clone())
            .consume::<PaymentFailed, _>(EventKind::PaymentsFailed, fold);
        let live = crate::live::start(db.clone(), settings.max_watchers, wiring.shutdown().clone());
        routes::router(AppState {
            db,
            live,
            gateway_url: settings.gateway_url.clone(),
            http: orderflow_platform::tls::http_client(),
        })
    }
}
