//! inventory-service: owns products, prices and stock, and plays the inventory part of the order
//! saga. On `orders.created` it reserves every line of an order atomically (or rejects the order
//! with nothing reserved), on `payments.completed` it commits the reservation, on
//! `payments.failed` it releases it; its HTTP API lets operators read and restock the catalog.
//!
//! Layout: `configuration` (layered settings), `startup` (build and run, graceful drain),
//! [`domain`] (stock and reservation rules, no I/O), `handlers` (one per consumed event),
//! `routes` (one per HTTP resource), [`storage`] (queries, the same SQL for SQLite and
//! PostgreSQL).
//!
//! It must never oversell (stock moves only through conditional updates, and the tables refuse
//! negative stock), never change state without recording the event in the inbox in the same
//! transaction, and never publish directly: every event goes through the outbox.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use inventory_service::{Application, Settings};
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let mut settings = Settings::default();
//! settings.common.port = 0;
//! let app = Application::build(settings).await?;
//! println!("listening on {}", app.port());
//! app.run_until_stopped(shutdown).await
//! # }
//! ```

pub mod audit;
pub(crate) mod configuration;
pub mod domain;
pub(crate) mod handlers;
pub(crate) mod routes;
pub(crate) mod startup;
pub mod storage;

pub use configuration::Settings;
pub use startup::{Application, InventoryService};

use orderflow_events::{Currency, ProductId};
use orderflow_platform::{Db, WriteError};

use crate::domain::{Product, StockLevel, UnitPrice};
use crate::storage::{StorageError, products};

/// Creates a product or sets its stock level, price and currency (reserved and committed units
/// are kept): what `PUT /inventory/{product_id}` does, without HTTP.
///
/// # Errors
/// The database failed.
pub async fn upsert_product(
    db: &Db,
    product_id: ProductId,
    available: StockLevel,
    unit_price: UnitPrice,
    currency: Currency,
) -> Result<Product, StorageError> {
    db.write(move |tx| {
        Box::pin(
            async move { products::upsert(tx, &product_id, available, unit_price, Some(&currency)).await },
        )
    })
    .await
    .map_err(WriteError::into_unit_error)
}

/// Seeds the demo catalog (`domain::demo_catalog`: `sku-001` … `sku-040`). Products that
/// already exist are left as they are, so a restart does not reset stock. Returns how many were
/// created.
///
/// # Errors
/// The database failed.
pub async fn seed_demo_catalog(db: &Db) -> Result<usize, StorageError> {
    let catalog = domain::demo_catalog().map_err(StorageError::corrupt)?;
    db.write(move |tx| {
        Box::pin(async move {
            let mut created = 0;
            for p in &catalog {
                if products::insert_if_absent(tx, &p.product_id, p.available, p.unit_price, &p.currency)
                    .await?
                {
                    created += 1;
                }
            }
            Ok(created)
        })
    })
    .await
    .map_err(WriteError::into_unit_error)
}
