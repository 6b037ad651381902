//! Queries of the payment service (portable SQL: SQLite and PostgreSQL).

use sqlx::AnyConnection;

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
pub async fn exists(conn: &mut AnyConnection, order_id: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("SELECT order_id FROM payments WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(conn)
        .await?
        .is_some())
}

/// Records the decision; `false` when one was already recorded.
pub async fn insert(conn: &mut AnyConnection, p: &PaymentRecord<'_>) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO payments (order_id, payment_id, status, charge_id, amount_cents, currency, reason, detail, \
         attempts, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(p.order_id)
    .bind(p.payment_id)
    .bind(p.status)
    .bind(p.charge_id)
    .bind(p.amount_cents)
    .bind(p.currency)
    .bind(p.reason)
    .bind(p.detail)
    .bind(p.attempts)
    .bind(orderflow_platform::now_rfc3339())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
