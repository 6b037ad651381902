//! Queries of the payment service (portable SQL: SQLite and PostgreSQL).
//!
//! A payment crosses this edge typed ([`PaymentRecord`]); its strings exist only in the SQL
//! below. Failures are [`StorageError`]s, mapped to the consumer's verdict once, in
//! [`crate::handlers`].

use orderflow_events::{ChargeId, Money, OrderId, PaymentFailureReason, PaymentId};
use orderflow_platform::args;
use orderflow_platform::sql::{SqlError, Tx};

use crate::domain::PaymentStatus;

/// Why a query of the payment service failed.
///
/// Only the database can fail here: the service writes typed [`PaymentRecord`]s and reads back
/// no stored value, only whether a row exists ([`exists`]), so no row is ever decoded. A query
/// that reads a payment back adds its decode failure here, as a variant of its own.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StorageError {
    /// The database failed (connection, lock, constraint…).
    #[error("database: {0}")]
    Database(#[from] SqlError),
}

/// A decided payment, typed up to this edge: the strings exist only in the SQL below.
#[derive(Debug)]
pub(crate) struct PaymentRecord {
    /// The order paid for.
    pub(crate) order_id: OrderId,
    /// Our payment id.
    pub(crate) payment_id: PaymentId,
    /// Completed or failed.
    pub(crate) status: PaymentStatus,
    /// Gateway charge id, when a charge exists (a declined charge has one too).
    pub(crate) charge_id: Option<ChargeId>,
    /// What was asked for.
    pub(crate) amount: Money,
    /// Why it failed.
    pub(crate) reason: Option<PaymentFailureReason>,
    /// What the gateway said, when it said nothing usable.
    pub(crate) detail: Option<String>,
    /// Gateway calls made.
    pub(crate) attempts: i64,
}

/// Whether a payment for the order was already decided.
pub(crate) async fn exists(tx: &mut Tx, order_id: OrderId) -> Result<bool, StorageError> {
    let id = order_id.to_string();
    Ok(tx.query_opt("SELECT 1 FROM payments WHERE order_id = $1", args![&id]).await?.is_some())
}

/// Records the decision; `false` when one was already recorded.
pub(crate) async fn insert(tx: &mut Tx, p: &PaymentRecord) -> Result<bool, StorageError> {
    let now = orderflow_platform::now_rfc3339();
    let (order_id, payment_id) = (p.order_id.to_string(), p.payment_id.to_string());
    let inserted = tx
        .execute(
            "INSERT INTO payments (order_id, payment_id, status, charge_id, amount_cents, currency, reason, detail, \
             attempts, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (order_id) DO NOTHING",
            args![
                &order_id,
                &payment_id,
                p.status.as_str(),
                p.charge_id.as_ref().map(ChargeId::as_str),
                p.amount.cents(),
                p.amount.currency().as_str(),
                p.reason.map(PaymentFailureReason::as_str),
                p.detail.as_deref(),
                p.attempts,
                &now
            ],
        )
        .await?;
    Ok(inserted == 1)
}
