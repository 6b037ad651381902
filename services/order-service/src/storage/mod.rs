//! Queries of the order service (portable SQL: SQLite and PostgreSQL).

use sqlx::{AnyConnection, Row};

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
    /// `standard` | `express`.
    pub priority: String,
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
    /// `standard` | `express`.
    pub priority: &'a str,
    /// Correlation id.
    pub correlation_id: &'a str,
    /// RFC 3339.
    pub now: &'a str,
}

/// Inserts a pending order and its first history entry.
pub async fn insert_order(conn: &mut AnyConnection, o: &NewOrder<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO orders (order_id, customer_id, items, priority, status, correlation_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $6)",
    )
    .bind(o.order_id)
    .bind(o.customer_id)
    .bind(o.items)
    .bind(o.priority)
    .bind(o.correlation_id)
    .bind(o.now)
    .execute(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO order_history (order_id, seq, status, at) VALUES ($1, 1, 'pending', $2)")
        .bind(o.order_id)
        .bind(o.now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn order_from_row(row: &sqlx::any::AnyRow) -> Result<OrderRow, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(OrderRow {
        order_id: row.try_get("order_id")?,
        customer_id: row.try_get("customer_id")?,
        items: row.try_get("items")?,
        priority: row.try_get("priority")?,
        status: OrderStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown order status {status:?}").into()))?,
        reason: row.try_get("reason")?,
        total_cents: row.try_get("total_cents")?,
        currency: row.try_get("currency")?,
        correlation_id: row.try_get("correlation_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The order, if it exists.
pub async fn find_order(conn: &mut AnyConnection, order_id: &str) -> Result<Option<OrderRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT order_id, customer_id, items, priority, status, reason, total_cents, currency, correlation_id, \
         created_at, updated_at FROM orders WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(order_from_row).transpose()
}

/// `(status, at)` in order.
pub async fn history(conn: &mut AnyConnection, order_id: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query("SELECT status, at FROM order_history WHERE order_id = $1 ORDER BY seq")
        .bind(order_id)
        .fetch_all(conn)
        .await?;
    rows.iter().map(|r| Ok((r.try_get("status")?, r.try_get("at")?))).collect()
}

/// Moves a pending order to a terminal status (guarded: only if still pending). Returns whether
/// it moved.
pub async fn finish_order(
    conn: &mut AnyConnection,
    order_id: &str,
    status: OrderStatus,
    reason: Option<&str>,
    total: Option<(i64, &str)>,
    now: &str,
) -> Result<bool, sqlx::Error> {
    let moved = sqlx::query(
        "UPDATE orders SET status = $1, reason = $2, total_cents = $3, currency = $4, updated_at = $5 \
         WHERE order_id = $6 AND status = 'pending'",
    )
    .bind(status.as_str())
    .bind(reason)
    .bind(total.map(|t| t.0))
    .bind(total.map(|t| t.1))
    .bind(now)
    .bind(order_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if moved {
        sqlx::query(
            "INSERT INTO order_history (order_id, seq, status, at) \
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3 FROM order_history WHERE order_id = $1",
        )
        .bind(order_id)
        .bind(status.as_str())
        .bind(now)
        .execute(&mut *conn)
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
    conn: &mut AnyConnection,
    key: &str,
    response: &StoredResponse,
    now: &str,
) -> Result<Option<StoredResponse>, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (idem_key, request_body, status_code, response_body, location, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idem_key) DO NOTHING",
    )
    .bind(key)
    .bind(&response.request_body)
    .bind(i64::from(response.status_code))
    .bind(&response.response_body)
    .bind(response.location.as_deref())
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT request_body, status_code, response_body, location FROM idempotency_keys WHERE idem_key = $1",
    )
    .bind(key)
    .fetch_one(conn)
    .await?;
    let code: i64 = row.try_get("status_code")?;
    Ok(Some(StoredResponse {
        request_body: row.try_get("request_body")?,
        status_code: u16::try_from(code).unwrap_or(500),
        response_body: row.try_get("response_body")?,
        location: row.try_get("location")?,
    }))
}

/// Deletes idempotency records older than `cutoff` (RFC 3339).
pub async fn purge_idempotency_keys(pool: &sqlx::AnyPool, cutoff: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(cutoff)
        .execute(pool)
        .await?
        .rows_affected())
}
