//! Read-only views of the inventory's books, for the invariant checker and operators: the one
//! way code outside this crate reads its tables (their layout stays this crate's business).
//! Nothing here writes, except [`sabotage`], which exists to prove the checker works.

use std::collections::BTreeMap;

use orderflow_events::ReservedLine;
use orderflow_platform::{Db, args};

use crate::domain::ReservationStatus;
use crate::storage::StorageError;

/// One product's stock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductStock {
    /// The product id.
    pub product_id: String,
    /// Units that can be reserved.
    pub available: i64,
    /// Units held for orders whose payment is pending.
    pub reserved: i64,
    /// Units sold.
    pub committed: i64,
}

/// One order's reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservationEntry {
    /// The order it holds stock for.
    pub order_id: String,
    /// Reserved, committed or released.
    pub status: ReservationStatus,
    /// Its lines: product id and units.
    pub lines: Vec<(String, i64)>,
}

/// Products and reservations read from one snapshot, so that a commit landing between two reads
/// cannot look like a broken ledger.
#[derive(Clone, Debug, Default)]
pub struct StockLedger {
    /// Every product.
    pub products: Vec<ProductStock>,
    /// Every reservation.
    pub reservations: Vec<ReservationEntry>,
}

/// The whole ledger, from one snapshot.
///
/// # Errors
/// The database failed, or a stored reservation is not what this crate writes.
pub async fn ledger(db: &Db) -> Result<StockLedger, StorageError> {
    db.read_snapshot(|tx| {
        Box::pin(async move {
            let products = tx
                .query_all(
                    "SELECT product_id, available, reserved, committed FROM products ORDER BY product_id",
                    &[],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(ProductStock {
                        product_id: r.text(0)?,
                        available: r.int(1)?,
                        reserved: r.int(2)?,
                        committed: r.int(3)?,
                    })
                })
                .collect::<Result<Vec<_>, StorageError>>()?;
            let mut reservations = Vec::new();
            for r in tx
                .query_all("SELECT order_id, status, lines FROM reservations ORDER BY order_id", &[])
                .await?
            {
                let lines: Vec<ReservedLine> =
                    serde_json::from_str(&r.text(2)?).map_err(StorageError::corrupt)?;
                reservations.push(ReservationEntry {
                    order_id: r.text(0)?,
                    status: r.text(1)?.parse().map_err(StorageError::corrupt)?,
                    lines: lines
                        .into_iter()
                        .map(|l| (l.product_id.to_string(), i64::from(l.quantity.get())))
                        .collect(),
                });
            }
            Ok(StockLedger { products, reservations })
        })
    })
    .await
}

/// available + reserved + committed per product: what no sale or release may change.
///
/// # Errors
/// The database failed.
pub async fn stock_totals(db: &Db) -> Result<BTreeMap<String, i64>, StorageError> {
    db.read(|tx| {
        Box::pin(async move {
            let rows = tx
                .query_all("SELECT product_id, available + reserved + committed FROM products", &[])
                .await?;
            rows.iter().map(|r| Ok((r.text(0)?, r.int(1)?))).collect()
        })
    })
    .await
}

/// Breaks the books on purpose, for `orderflow verify --sabotage` to prove that the invariant
/// checker notices. Never called by the service.
pub mod sabotage {
    use super::{Db, StorageError, args};

    /// Commits one more unit of a sold product than its reservations hold, as a handler that
    /// applied a payment twice would. Returns the product, or `None` when nothing was sold.
    ///
    /// # Errors
    /// The database failed.
    pub async fn double_apply(db: &Db) -> Result<Option<String>, StorageError> {
        db.write(|tx| {
            Box::pin(async move {
                let pick = "SELECT product_id FROM products WHERE committed > 0 AND available > 0 ORDER BY product_id";
                let Some(row) = tx.query_opt(pick, &[]).await? else { return Ok(None) };
                let product = row.text(0)?;
                tx.execute(
                    "UPDATE products SET committed = committed + 1, available = available - 1 WHERE product_id = $1",
                    args![&product],
                )
                .await?;
                Ok(Some(product))
            })
        })
        .await
        .map_err(orderflow_platform::WriteError::into_unit_error)
    }
}
