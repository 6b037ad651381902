//! Queries of the payment service (portable SQL: SQLite and PostgreSQL).

use orderflow_platform::args;
use orderflow_platform::sql::{SqlError, Tx};

/// A decided payment.
#[derive(Debug)]
pub struct PaymentRecord<'a> {
    /// Order id.
    pub order_id: &'a str,
    /// Our payment id.
    pub payment_id: &'a str,
    /// `completed` | `failed`.
    pub status: &'a str,
    /// Gateway charge id, when a charge exists.
    pub charge_id: Option<&'a str>,
    /// Amount.
    pub amount_cents: i64,
    /// Currency.
    pub currency: &'a str,
    /// Failure reason.
    pub reason: Option<&'a str>,
    /// Failure detail.
    pub detail: Option<&'a str>,
    /// Gateway calls made.
    pub attempts: i64,
}

/// Whether a payment for the order was already decided.
pub async fn exists(tx: &mut Tx, order_id: &str) -> Result<bool, SqlError> {
    Ok(tx.query_opt("SELECT 1 FROM payments WHERE order_id = $1", args![order_id]).await?.is_some())
}

/// Records the decision; `false` when one was already recorded.
pub async fn insert(tx: &mut Tx, p: &PaymentRecord<'_>) -> Result<bool, SqlError> {
    let now = orderflow_platform::now_rfc3339();
    let inserted = tx
        .execute(
            "INSERT INTO payments (order_id, payment_id, status, charge_id, amount_cents, currency, reason, detail, \
             attempts, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (order_id) DO NOTHING",
            args![
                p.order_id,
                p.payment_id,
                p.status,
                p.charge_id,
                p.amount_cents,
                p.currency,
                p.reason,
                p.detail,
                p.attempts,
                &now
            ],
        )
        .await?;
    Ok(inserted == 1)
}
