//! Queries on `reservations`.

use orderflow_events::{Currency, OrderId, ReservationId, ReservedLine};
use sqlx::{AnyConnection, Row};

use super::StorageError;
use crate::domain::{Reservation, ReservationStatus};

/// Inserts a new reservation.
pub async fn insert(conn: &mut AnyConnection, r: &Reservation) -> Result<(), StorageError> {
    let lines = serde_json::to_string(&r.lines).map_err(StorageError::corrupt)?;
    let now = orderflow_platform::now_rfc3339();
    sqlx::query(
        "INSERT INTO reservations (order_id, reservation_id, status, lines, total_cents, currency, express, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(r.order_id.to_string())
    .bind(r.reservation_id.to_string())
    .bind(r.status.as_str())
    .bind(lines)
    .bind(r.total_cents)
    .bind(r.currency.as_str())
    .bind(i64::from(r.express))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The reservation of an order.
pub async fn find(conn: &mut AnyConnection, order_id: OrderId) -> Result<Option<Reservation>, StorageError> {
    let row = sqlx::query(
        "SELECT reservation_id, status, lines, total_cents, currency, express FROM reservations \
         WHERE order_id = $1",
    )
    .bind(order_id.to_string())
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let reservation_id: String = row.try_get("reservation_id")?;
    let status: String = row.try_get("status")?;
    let lines: String = row.try_get("lines")?;
    let currency: String = row.try_get("currency")?;
    let express: i64 = row.try_get("express")?;
    Ok(Some(Reservation {
        order_id,
        reservation_id: ReservationId::parse(&reservation_id).map_err(StorageError::corrupt)?,
        status: status.parse().map_err(StorageError::corrupt)?,
        lines: serde_json::from_str::<Vec<ReservedLine>>(&lines).map_err(StorageError::corrupt)?,
        total_cents: row.try_get("total_cents")?,
        currency: Currency::parse(currency).map_err(StorageError::corrupt)?,
        express: express != 0,
    }))
}

/// Changes the status from `from` to `to`; `false` if it was not `from` (someone else moved it).
/// On PostgreSQL the row lock taken here serializes concurrent outcomes for the same order.
pub async fn transition(
    conn: &mut AnyConnection,
    order_id: OrderId,
    from: ReservationStatus,
    to: ReservationStatus,
) -> Result<bool, StorageError> {
    let done = sqlx::query(
        "UPDATE reservations SET status = $1, updated_at = $2 WHERE order_id = $3 AND status = $4",
    )
    .bind(to.as_str())
    .bind(orderflow_platform::now_rfc3339())
    .bind(order_id.to_string())
    .bind(from.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
