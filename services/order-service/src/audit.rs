//! Read-only views of the orders, for the invariant checker and operators: the one way code
//! outside this crate reads its tables. Nothing here writes, except [`sabotage`], which exists
//! to prove the checker works.

use orderflow_platform::{Db, args};

use crate::domain::OrderStatus;
use crate::storage::{self, StorageError};

/// An order as the checker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderSummary {
    /// The order id.
    pub order_id: String,
    /// Where it is.
    pub status: OrderStatus,
    /// Why it was cancelled.
    pub reason: Option<String>,
    /// What was charged, once confirmed.
    pub total_cents: Option<i64>,
}

/// Every order.
///
/// # Errors
/// The database failed, or a stored status is not one this crate writes.
pub async fn orders(db: &Db) -> Result<Vec<OrderSummary>, StorageError> {
    db.read(|tx| {
        Box::pin(async move {
            let rows = tx.query_all("SELECT order_id, status, reason, total_cents FROM orders", &[]).await?;
            rows.iter()
                .map(|r| {
                    let order_id = r.text(0)?;
                    Ok(OrderSummary {
                        status: storage::order_status("orders", &order_id, &r.text(1)?)?,
                        order_id,
                        reason: r.opt_text(2)?,
                        total_cents: r.opt_int(3)?,
                    })
                })
                .collect()
        })
    })
    .await
}

/// Breaks the orders on purpose, for `orderflow verify --sabotage` to prove that the invariant
/// checker notices. Never called by the service.
pub mod sabotage {
    use super::{Db, OrderStatus, StorageError, args};

    /// Puts a confirmed order back to `pending`, as if its last event had been lost. Returns the
    /// order, or `None` when none was confirmed.
    ///
    /// # Errors
    /// The database failed.
    pub async fn stuck_order(db: &Db) -> Result<Option<String>, StorageError> {
        db.write(|tx| {
            Box::pin(async move {
                let pick = "SELECT order_id FROM orders WHERE status = $1 ORDER BY order_id";
                let Some(row) = tx.query_opt(pick, args![OrderStatus::Confirmed.as_str()]).await? else {
                    return Ok(None);
                };
                let order = row.text(0)?;
                tx.execute(
                    "UPDATE orders SET status = $1 WHERE order_id = $2",
                    args![OrderStatus::Pending.as_str(), &order],
                )
                .await?;
                Ok(Some(order))
            })
        })
        .await
        .map_err(orderflow_platform::WriteError::into_unit_error)
    }
}
