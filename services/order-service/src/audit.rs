//! Read-only views of the orders, for the invariant checker and operators: the one way code
//! outside this crate reads its tables. Nothing here writes, except [`sabotage`], which exists
//! to prove the checker works.

use orderflow_platform::{Db, SqlError, args};

use crate::domain::OrderStatus;

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
pub async fn orders(db: &Db) -> Result<Vec<OrderSummary>, SqlError> {
    db.read(|tx| {
        Box::pin(async move {
            let rows = tx.query_all("SELECT order_id, status, reason, total_cents FROM orders", &[]).await?;
            rows.iter()
                .map(|r| {
                    let status = r.text(1)?;
                    Ok(OrderSummary {
                        order_id: r.text(0)?,
                        status: OrderStatus::parse(&status)
                            .ok_or_else(|| SqlError::Decode(format!("unknown order status {status:?}")))?,
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
    use super::{Db, SqlError, args};

    /// Puts a confirmed order back to `pending`, as if its last event had been lost. Returns the
    /// order, or `None` when none was confirmed.
    ///
    /// # Errors
    /// The database failed.
    pub async fn stuck_order(db: &Db) -> Result<Option<String>, SqlError> {
        db.write(|tx| {
            Box::pin(async move {
                let pick = "SELECT order_id FROM orders WHERE status = 'confirmed' ORDER BY order_id";
                let Some(row) = tx.query_opt(pick, &[]).await? else { return Ok(None) };
                let order = row.text(0)?;
                tx.execute("UPDATE orders SET status = 'pending' WHERE order_id = $1", args![&order]).await?;
                Ok(Some(order))
            })
        })
        .await
        .map_err(orderflow_platform::WriteError::into_unit_error)
    }
}
