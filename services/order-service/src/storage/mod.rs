//! Queries of the order service (portable SQL: SQLite and PostgreSQL).

use orderflow_platform::args;
use orderflow_platform::sql::{Row, SqlError, Tx};

use orderflow_events::Priority;

use crate::domain::OrderStatus;

/// A stored order.
#[derive(Clone, Debug)]
pub struct OrderRow {
    /// UUID text.
    pub order_id: String,
    /// Customer.
    pub customer_id: String,
    /// JSON array of items.
    pub items: String,
    /// Its lane.
    pub priority: Priority,
    /// Status.
    pub status: OrderStatus,
    /// Cancellation reason.
    pub reason: Option<String>,
    /// Total once confirmed.
    pub total_cents: Option<i64>,
    /// Currency once confirmed.
    pub currency: Option<String>,
    /// The correlation id of the request that created it.
    pub correlation_id: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A new order.
#[derive(Debug)]
pub struct NewOrder<'a> {
    /// UUID text.
    pub order_id: &'a str,
    /// Customer.
    pub customer_id: &'a str,
    /// JSON array of items.
    pub items: &'a str,
    /// Its lane.
    pub priority: Priority,
    /// Correlation id.
    pub correlation_id: &'a str,
    /// RFC 3339.
    pub now: &'a str,
}

/// Inserts a pending order and its first history entry.
pub async fn insert_order(tx: &mut Tx, o: &NewOrder<'_>) -> Result<(), SqlError> {
    tx.execute(
        "INSERT INTO orders (order_id, customer_id, items, priority, status, correlation_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $6)",
        args![o.order_id, o.customer_id, o.items, o.priority.as_str(), o.correlation_id, o.now],
    )
    .await?;
    tx.execute(
        "INSERT INTO order_history (order_id, seq, status, at) VALUES ($1, 1, 'pending', $2)",
        args![o.order_id, o.now],
    )
    .await?;
    Ok(())
}

fn order_from_row(row: &Row) -> Result<OrderRow, SqlError> {
    let status = row.text(4)?;
    Ok(OrderRow {
        order_id: row.text(0)?,
        customer_id: row.text(1)?,
        items: row.text(2)?,
        priority: {
            let priority = row.text(3)?;
            Priority::parse(&priority)
                .ok_or_else(|| SqlError::Decode(format!("unknown priority {priority:?}")))?
        },
        status: OrderStatus::parse(&status)
            .ok_or_else(|| SqlError::Decode(format!("unknown order status {status:?}")))?,
        reason: row.opt_text(5)?,
        total_cents: row.opt_int(6)?,
        currency: row.opt_text(7)?,
        correlation_id: row.text(8)?,
        created_at: row.text(9)?,
        updated_at: row.text(10)?,
    })
}

/// The order, if it exists.
pub async fn find_order(tx: &mut Tx, order_id: &str) -> Result<Option<OrderRow>, SqlError> {
    let row = tx
        .query_opt(
            "SELECT order_id, customer_id, items, priority, status, reason, total_cents, currency, correlation_id, \
             created_at, updated_at FROM orders WHERE order_id = $1",
            args![order_id],
        )
        .await?;
    row.as_ref().map(order_from_row).transpose()
}

/// `(status, at)` in order.
pub async fn history(tx: &mut Tx, order_id: &str) -> Result<Vec<(String, String)>, SqlError> {
    let rows = tx
        .query_all("SELECT status, at FROM order_history WHERE order_id = $1 ORDER BY seq", args![order_id])
        .await?;
    rows.iter().map(|r| Ok((r.text(0)?, r.text(1)?))).collect()
}

/// Moves a pending order to a terminal status (guarded: only if still pending). Returns whether
/// it moved. A pending order has exactly one history entry, so the terminal one is always the
/// second: no `MAX(seq)` lookup.
pub async fn finish_order(
    tx: &mut Tx,
    order_id: &str,
    status: OrderStatus,
    reason: Option<&str>,
    total: Option<(i64, &str)>,
    now: &str,
) -> Result<bool, SqlError> {
    let moved = tx
        .execute(
            "UPDATE orders SET status = $1, reason = $2, total_cents = $3, currency = $4, updated_at = $5 \
             WHERE order_id = $6 AND status = 'pending'",
            args![status.as_str(), reason, total.map(|t| t.0), total.map(|t| t.1), now, order_id],
        )
        .await?
        == 1;
    if moved {
        tx.execute(
            "INSERT INTO order_history (order_id, seq, status, at) VALUES ($1, 2, $2, $3)",
            args![order_id, status.as_str(), now],
        )
        .await?;
    }
    Ok(moved)
}

/// A stored idempotent response.
#[derive(Clone, Debug)]
pub struct StoredResponse {
    /// The canonical request body it answered.
    pub request_body: String,
    /// HTTP status.
    pub status_code: u16,
    /// JSON body.
    pub response_body: String,
    /// `Location` header.
    pub location: Option<String>,
}

/// Claims `key` for this request; `None` when claimed now, `Some(previous)` when it was used.
pub async fn claim_idempotency_key(
    tx: &mut Tx,
    key: &str,
    response: &StoredResponse,
    now: &str,
) -> Result<Option<StoredResponse>, SqlError> {
    let inserted = tx
        .execute(
            "INSERT INTO idempotency_keys (idem_key, request_body, status_code, response_body, location, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idem_key) DO NOTHING",
            args![
                key,
                &response.request_body,
                i64::from(response.status_code),
                &response.response_body,
                response.location.as_deref(),
                now
            ],
        )
        .await?;
    if inserted == 1 {
        return Ok(None);
    }
    let row = tx
        .query_one(
            "SELECT request_body, status_code, response_body, location FROM idempotency_keys WHERE idem_key = $1",
            args![key],
        )
        .await?;
    Ok(Some(StoredResponse {
        request_body: row.text(0)?,
        status_code: u16::try_from(row.int(1)?).unwrap_or(500),
        response_body: row.text(2)?,
        location: row.opt_text(3)?,
    }))
}

/// Deletes idempotency records older than `cutoff` (RFC 3339).
pub async fn purge_idempotency_keys(tx: &mut Tx, cutoff: &str) -> Result<u64, SqlError> {
    tx.execute("DELETE FROM idempotency_keys WHERE created_at < $1", args![cutoff]).await
}
