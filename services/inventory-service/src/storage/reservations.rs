//! Queries on `reservations`.

use orderflow_events::{Currency, OrderId, ReservationId, ReservedLine};
use orderflow_platform::args;
use orderflow_platform::sql::Tx;

use super::StorageError;
use crate::domain::{Reservation, ReservationStatus};

/// Inserts a new reservation.
pub(crate) async fn insert(tx: &mut Tx, r: &Reservation) -> Result<(), StorageError> {
    let lines = serde_json::to_string(&r.lines).map_err(StorageError::corrupt)?;
    let now = orderflow_platform::now_rfc3339();
    let (order_id, reservation_id) = (r.order_id.to_string(), r.reservation_id.to_string());
    tx.execute(
        "INSERT INTO reservations (order_id, reservation_id, status, lines, total_cents, currency, express, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        args![
            &order_id,
            &reservation_id,
            r.status.as_str(),
            &lines,
            r.total_cents,
            r.currency.as_str(),
            i64::from(r.express),
            &now
        ],
    )
    .await?;
    Ok(())
}

/// The reservation of an order.
pub(crate) async fn find(tx: &mut Tx, order_id: OrderId) -> Result<Option<Reservation>, StorageError> {
    let id = order_id.to_string();
    let row = tx
        .query_opt(
            "SELECT reservation_id, status, lines, total_cents, currency, express FROM reservations \
             WHERE order_id = $1",
            args![&id],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Reservation {
        order_id,
        reservation_id: ReservationId::parse(&row.text(0)?).map_err(StorageError::corrupt)?,
        status: row.text(1)?.parse().map_err(StorageError::corrupt)?,
        lines: serde_json::from_str::<Vec<ReservedLine>>(&row.text(2)?).map_err(StorageError::corrupt)?,
        total_cents: row.int(3)?,
        currency: Currency::parse(row.text(4)?).map_err(StorageError::corrupt)?,
        express: row.int(5)? != 0,
    }))
}

/// Changes the status from `from` to `to`; `false` if it was not `from` (someone else moved it).
/// On PostgreSQL the row lock taken here serializes concurrent outcomes for the same order.
pub(crate) async fn transition(
    tx: &mut Tx,
    order_id: OrderId,
    from: ReservationStatus,
    to: ReservationStatus,
) -> Result<bool, StorageError> {
    let (id, now) = (order_id.to_string(), orderflow_platform::now_rfc3339());
    let moved = tx
        .execute(
            "UPDATE reservations SET status = $1, updated_at = $2 WHERE order_id = $3 AND status = $4",
            args![to.as_str(), &now, &id, from.as_str()],
        )
        .await?;
    Ok(moved == 1)
}
