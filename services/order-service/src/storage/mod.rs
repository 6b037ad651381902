//! Queries of the order service (portable SQL: SQLite and PostgreSQL).
//!
//! Everything crosses this edge typed: ids, items, status, priority, cancel reason and total go
//! in as the domain's types and come back out as them. The strings and JSON text exist only in
//! the SQL below; a stored value that does not decode is a [`StorageError::Corrupt`] naming the
//! row and column, never a silent default.

use std::fmt;

use http::StatusCode;
use orderflow_events::v2::CancelReason;
use orderflow_events::{CorrelationId, Currency, CustomerId, Money, OrderId, OrderItem, Priority};
use orderflow_platform::args;
use orderflow_platform::sql::{Row, SqlError, Tx};

use crate::domain::OrderStatus;

/// Why a query of the order service failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database failed (connection, lock, constraint, a column of an unexpected SQL type…).
    #[error("database: {0}")]
    Database(#[from] SqlError),
    /// A stored value does not decode into the order's types: an unknown status, priority or
    /// cancel reason, items that are not a JSON array of order lines, an invalid customer id,
    /// correlation id or currency, a negative total, a total without its currency. This code
    /// never writes such a value: it was edited by hand, corrupted, or written by another
    /// version of the service.
    #[error("corrupt {table} row {key}: column {column}: {problem}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's key (the order id, the idempotency key).
        key: String,
        /// The column that does not decode.
        column: &'static str,
        /// What is wrong with its value.
        problem: String,
    },
    /// A value could not be encoded for storage (the order's items as JSON).
    #[error("encoding column {column} of {table} row {key}: {source}")]
    Encode {
        /// The table.
        table: &'static str,
        /// The row's key.
        key: String,
        /// The column.
        column: &'static str,
        /// The encoder's error.
        source: serde_json::Error,
    },
}

impl StorageError {
    fn corrupt(
        table: &'static str,
        key: impl fmt::Display,
        column: &'static str,
        problem: impl fmt::Display,
    ) -> Self {
        Self::Corrupt { table, key: key.to_string(), column, problem: problem.to_string() }
    }
}

/// A stored order.
#[derive(Clone, Debug)]
pub(crate) struct OrderRow {
    /// The order.
    pub(crate) order_id: OrderId,
    /// Who ordered.
    pub(crate) customer_id: CustomerId,
    /// Its lines, as ordered.
    pub(crate) items: Vec<OrderItem>,
    /// Its lane.
    pub(crate) priority: Priority,
    /// Where it is.
    pub(crate) status: OrderStatus,
    /// Why it was cancelled.
    pub(crate) reason: Option<CancelReason>,
    /// What was charged, once confirmed.
    pub(crate) total: Option<Money>,
    /// The correlation id of the request that created it.
    #[allow(
        dead_code,
        reason = "read back so that a corrupt value fails the read like every other column; only tests look at it"
    )]
    pub(crate) correlation_id: CorrelationId,
    /// RFC 3339.
    pub(crate) created_at: String,
    /// RFC 3339.
    pub(crate) updated_at: String,
}

/// A new order.
#[derive(Debug)]
pub(crate) struct NewOrder<'a> {
    /// The order.
    pub(crate) order_id: OrderId,
    /// Who orders.
    pub(crate) customer_id: &'a CustomerId,
    /// Its lines.
    pub(crate) items: &'a [OrderItem],
    /// Its lane.
    pub(crate) priority: Priority,
    /// The correlation id of the request.
    pub(crate) correlation_id: &'a CorrelationId,
    /// RFC 3339.
    pub(crate) now: &'a str,
}

/// One entry of an order's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusChange {
    /// The status the order reached.
    pub(crate) status: OrderStatus,
    /// When (RFC 3339).
    pub(crate) at: String,
}

/// Inserts a pending order and its first history entry.
pub(crate) async fn insert_order(tx: &mut Tx, o: &NewOrder<'_>) -> Result<(), StorageError> {
    let order_id = o.order_id.to_string();
    let items = serde_json::to_string(o.items).map_err(|source| StorageError::Encode {
        table: "orders",
        key: order_id.clone(),
        column: "items",
        source,
    })?;
    let pending = OrderStatus::Pending.as_str();
    tx.execute(
        "INSERT INTO orders (order_id, customer_id, items, priority, status, correlation_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        args![
            &order_id,
            o.customer_id.as_str(),
            &items,
            o.priority.as_str(),
            pending,
            o.correlation_id.as_str(),
            o.now
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO order_history (order_id, seq, status, at) VALUES ($1, 1, $2, $3)",
        args![&order_id, pending, o.now],
    )
    .await?;
    Ok(())
}

/// The stored status of order `key`.
pub(crate) fn order_status(
    table: &'static str,
    key: &str,
    stored: &str,
) -> Result<OrderStatus, StorageError> {
    OrderStatus::parse(stored).ok_or_else(|| {
        StorageError::corrupt(table, key, "status", format_args!("unknown order status {stored:?}"))
    })
}

/// The stored cancel reason of order `key`. Parsed by the reason's own (serde) names, so it
/// knows every reason the events crate does.
fn cancel_reason(key: &str, stored: &str) -> Result<CancelReason, StorageError> {
    use serde::Deserialize;
    use serde::de::IntoDeserializer;
    use serde::de::value::Error;
    CancelReason::deserialize(IntoDeserializer::<Error>::into_deserializer(stored))
        .map_err(|e| StorageError::corrupt("orders", key, "reason", format_args!("{stored:?}: {e}")))
}

/// The stored total of order `key`: both columns or neither.
fn total(key: &str, cents: Option<i64>, currency: Option<String>) -> Result<Option<Money>, StorageError> {
    let corrupt = |column, problem: &dyn fmt::Display| StorageError::corrupt("orders", key, column, problem);
    match (cents, currency) {
        (None, None) => Ok(None),
        (Some(cents), Some(currency)) => {
            let currency = Currency::parse(&*currency)
                .map_err(|e| corrupt("currency", &format_args!("{currency:?}: {e}")))?;
            Money::new(cents, currency)
                .map(Some)
                .map_err(|e| corrupt("total_cents", &format_args!("{cents}: {e}")))
        }
        (Some(_), None) => Err(corrupt("currency", &"NULL, but total_cents is set")),
        (None, Some(_)) => Err(corrupt("total_cents", &"NULL, but currency is set")),
    }
}

fn order_from_row(order_id: OrderId, row: &Row) -> Result<OrderRow, StorageError> {
    let key = order_id.to_string();
    let corrupt = |column, problem: &dyn fmt::Display| StorageError::corrupt("orders", &key, column, problem);
    let priority = row.text(2)?;
    Ok(OrderRow {
        order_id,
        customer_id: CustomerId::parse(row.text(0)?).map_err(|e| corrupt("customer_id", &e))?,
        items: serde_json::from_str(&row.text(1)?).map_err(|e| corrupt("items", &e))?,
        priority: Priority::parse(&priority)
            .ok_or_else(|| corrupt("priority", &format_args!("unknown priority {priority:?}")))?,
        status: order_status("orders", &key, &row.text(3)?)?,
        reason: row.opt_text(4)?.map(|r| cancel_reason(&key, &r)).transpose()?,
        total: total(&key, row.opt_int(5)?, row.opt_text(6)?)?,
        correlation_id: CorrelationId::parse(row.text(7)?).map_err(|e| corrupt("correlation_id", &e))?,
        created_at: row.text(8)?,
        updated_at: row.text(9)?,
    })
}

/// The order, if it exists.
pub(crate) async fn find_order(tx: &mut Tx, order_id: OrderId) -> Result<Option<OrderRow>, StorageError> {
    let id = order_id.to_string();
    let row = tx
        .query_opt(
            "SELECT customer_id, items, priority, status, reason, total_cents, currency, correlation_id, \
             created_at, updated_at FROM orders WHERE order_id = $1",
            args![&id],
        )
        .await?;
    row.map(|row| order_from_row(order_id, &row)).transpose()
}

/// The order's history, oldest first.
pub(crate) async fn history(tx: &mut Tx, order_id: OrderId) -> Result<Vec<StatusChange>, StorageError> {
    let id = order_id.to_string();
    let rows = tx
        .query_all("SELECT status, at FROM order_history WHERE order_id = $1 ORDER BY seq", args![&id])
        .await?;
    rows.iter()
        .map(|r| {
            Ok(StatusChange { status: order_status("order_history", &id, &r.text(0)?)?, at: r.text(1)? })
        })
        .collect()
}

/// How a pending order ends.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Finish<'a> {
    /// Confirmed, with the total charged.
    Confirmed(&'a Money),
    /// Cancelled, and why.
    Cancelled(CancelReason),
}

impl Finish<'_> {
    /// The status it moves the order to.
    pub(crate) fn status(self) -> OrderStatus {
        match self {
            Self::Confirmed(_) => OrderStatus::Confirmed,
            Self::Cancelled(_) => OrderStatus::Cancelled,
        }
    }
}

/// Moves a pending order to a terminal status (guarded: only if still pending). Returns whether
/// it moved. A pending order has exactly one history entry, so the terminal one is always the
/// second: no `MAX(seq)` lookup.
pub(crate) async fn finish_order(
    tx: &mut Tx,
    order_id: OrderId,
    finish: Finish<'_>,
    now: &str,
) -> Result<bool, StorageError> {
    let id = order_id.to_string();
    let status = finish.status();
    let (reason, total) = match finish {
        Finish::Confirmed(total) => (None, Some(total)),
        Finish::Cancelled(reason) => (Some(reason.as_str()), None),
    };
    let moved = tx
        .execute(
            "UPDATE orders SET status = $1, reason = $2, total_cents = $3, currency = $4, updated_at = $5 \
             WHERE order_id = $6 AND status = $7",
            args![
                status.as_str(),
                reason,
                total.map(Money::cents),
                total.map(|t| t.currency().as_str()),
                now,
                &id,
                OrderStatus::Pending.as_str()
            ],
        )
        .await?
        == 1;
    if moved {
        tx.execute(
            "INSERT INTO order_history (order_id, seq, status, at) VALUES ($1, 2, $2, $3)",
            args![&id, status.as_str(), now],
        )
        .await?;
    }
    Ok(moved)
}

/// A stored idempotent response.
#[derive(Clone, Debug)]
pub(crate) struct StoredResponse {
    /// The canonical request body it answered.
    pub(crate) request_body: String,
    /// HTTP status.
    pub(crate) status_code: StatusCode,
    /// JSON body.
    pub(crate) response_body: String,
    /// `Location` header.
    pub(crate) location: Option<String>,
}

/// Claims `key` for this request; `None` when claimed now, `Some(previous)` when it was used.
pub(crate) async fn claim_idempotency_key(
    tx: &mut Tx,
    key: &str,
    response: &StoredResponse,
    now: &str,
) -> Result<Option<StoredResponse>, StorageError> {
    let inserted = tx
        .execute(
            "INSERT INTO idempotency_keys (idem_key, request_body, status_code, response_body, location, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idem_key) DO NOTHING",
            args![
                key,
                &response.request_body,
                i64::from(response.status_code.as_u16()),
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
    let code = row.int(1)?;
    let status_code =
        u16::try_from(code).ok().and_then(|c| StatusCode::from_u16(c).ok()).ok_or_else(|| {
            StorageError::corrupt(
                "idempotency_keys",
                key,
                "status_code",
                format_args!("{code} is not an HTTP status"),
            )
        })?;
    Ok(Some(StoredResponse {
        request_body: row.text(0)?,
        status_code,
        response_body: row.text(2)?,
        location: row.opt_text(3)?,
    }))
}

/// Deletes idempotency records older than `cutoff` (RFC 3339).
pub(crate) async fn purge_idempotency_keys(tx: &mut Tx, cutoff: &str) -> Result<u64, StorageError> {
    Ok(tx.execute("DELETE FROM idempotency_keys WHERE created_at < $1", args![cutoff]).await?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use orderflow_events::{ProductId, Quantity};
    use orderflow_messaging::HandlerError;
    use orderflow_platform::{Db, WriteError};

    use super::*;

    type Unit<'c, T> = std::pin::Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'c>>;

    /// A migrated SQLite database in a file of its own, removed on drop.
    struct TestDb {
        db: Db,
        path: std::path::PathBuf,
    }

    impl TestDb {
        async fn new() -> Self {
            let path = std::env::temp_dir().join(format!("order-storage-{}.db", uuid::Uuid::new_v4()));
            let url = format!("sqlite://{}", path.display());
            let db = Db::connect(&url, "orders", crate::startup::MIGRATIONS).await.unwrap();
            Self { db, path }
        }

        async fn write<T: Send + 'static>(
            &self,
            unit: impl for<'c> FnOnce(&'c mut Tx) -> Unit<'c, T> + Send + 'static,
        ) -> Result<T, StorageError> {
            self.db.write(unit).await.map_err(WriteError::into_unit_error)
        }

        async fn find(&self, id: OrderId) -> Result<Option<OrderRow>, StorageError> {
            self.db.read(move |tx| Box::pin(async move { find_order(tx, id).await })).await
        }

        /// Overwrites one column of the order's row, as a hand edit would.
        async fn tamper(&self, id: OrderId, set: &'static str) {
            self.write(move |tx| {
                Box::pin(async move {
                    let id = id.to_string();
                    tx.execute(&format!("UPDATE orders SET {set} WHERE order_id = $1"), args![&id]).await?;
                    Ok(())
                })
            })
            .await
            .unwrap();
        }

        async fn close(self) {
            self.db.close().await;
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
            }
        }
    }

    fn items() -> Vec<OrderItem> {
        vec![
            OrderItem {
                product_id: ProductId::parse("sku-1").unwrap(),
                quantity: Quantity::parse(2).unwrap(),
            },
            OrderItem {
                product_id: ProductId::parse("sku-2").unwrap(),
                quantity: Quantity::parse(1).unwrap(),
            },
        ]
    }

    async fn placed(t: &TestDb) -> OrderId {
        let id = OrderId::new();
        t.write(move |tx| {
            Box::pin(async move {
                let (customer, correlation, items) =
                    (CustomerId::parse("c-1").unwrap(), CorrelationId::parse("corr-1").unwrap(), items());
                let new = NewOrder {
                    order_id: id,
                    customer_id: &customer,
                    items: &items,
                    priority: Priority::Express,
                    correlation_id: &correlation,
                    now: "2026-01-01T00:00:00Z",
                };
                insert_order(tx, &new).await
            })
        })
        .await
        .unwrap();
        id
    }

    fn corrupt_column(e: &StorageError) -> Option<&'static str> {
        match e {
            StorageError::Corrupt { column, .. } => Some(column),
            _ => None,
        }
    }

    #[tokio::test]
    async fn an_order_reads_back_as_written_and_its_items_are_stored_as_before() {
        let t = TestDb::new().await;
        let id = placed(&t).await;

        let order = t.find(id).await.unwrap().unwrap();
        assert_eq!(order.order_id, id);
        assert_eq!(order.customer_id.as_str(), "c-1");
        assert_eq!(order.items, items());
        assert_eq!((order.priority, order.status), (Priority::Express, OrderStatus::Pending));
        assert_eq!((order.reason, order.total), (None, None));
        assert_eq!(order.correlation_id.as_str(), "corr-1");
        let stored =
            t.db.read(move |tx| {
                Box::pin(async move {
                    let id = id.to_string();
                    tx.query_one("SELECT items FROM orders WHERE order_id = $1", args![&id]).await?.text(0)
                })
            })
            .await
            .unwrap();
        assert_eq!(stored, r#"[{"product_id":"sku-1","quantity":2},{"product_id":"sku-2","quantity":1}]"#);

        let total = Money::new(2_500, Currency::usd()).unwrap();
        let moved = t
            .write(move |tx| {
                Box::pin(async move {
                    finish_order(tx, id, Finish::Confirmed(&total), "2026-01-01T00:00:01Z").await
                })
            })
            .await
            .unwrap();
        assert!(moved);
        let order = t.find(id).await.unwrap().unwrap();
        assert_eq!(order.status, OrderStatus::Confirmed);
        assert_eq!(order.total, Some(Money::new(2_500, Currency::usd()).unwrap()));
        let again = t
            .write(move |tx| {
                let reason = Finish::Cancelled(CancelReason::OutOfStock);
                Box::pin(async move { finish_order(tx, id, reason, "2026-01-01T00:00:02Z").await })
            })
            .await
            .unwrap();
        assert!(!again, "only a pending order moves");
        let history = t.db.read(move |tx| Box::pin(async move { history(tx, id).await })).await.unwrap();
        let statuses: Vec<_> = history.iter().map(|h| h.status).collect();
        assert_eq!(statuses, [OrderStatus::Pending, OrderStatus::Confirmed]);
        t.close().await;
    }

    #[tokio::test]
    async fn every_cancel_reason_reads_back_as_itself() {
        let t = TestDb::new().await;
        for reason in [
            CancelReason::OutOfStock,
            CancelReason::UnknownProduct,
            CancelReason::CurrencyMismatch,
            CancelReason::PaymentDeclined,
            CancelReason::PaymentUnavailable,
        ] {
            let id = placed(&t).await;
            t.write(move |tx| {
                Box::pin(async move {
                    finish_order(tx, id, Finish::Cancelled(reason), "2026-01-01T00:00:01Z").await
                })
            })
            .await
            .unwrap();
            let order = t.find(id).await.unwrap().unwrap();
            assert_eq!(
                (order.status, order.reason, order.total),
                (OrderStatus::Cancelled, Some(reason), None)
            );
        }
        t.close().await;
    }

    #[tokio::test]
    async fn a_row_that_does_not_decode_is_corrupt_and_names_its_column() {
        let t = TestDb::new().await;
        for (set, column) in [
            ("status = 'shipped'", "status"),
            ("priority = 'urgent'", "priority"),
            ("items = '[{\"product_id\": \"sku-1\"}]'", "items"),
            ("items = 'not json'", "items"),
            ("customer_id = ''", "customer_id"),
            ("reason = 'bored'", "reason"),
            ("total_cents = -1, currency = 'USD'", "total_cents"),
            ("total_cents = 100, currency = 'usd'", "currency"),
            ("total_cents = 100", "currency"),
            ("currency = 'USD'", "total_cents"),
        ] {
            let id = placed(&t).await;
            t.tamper(id, set).await;
            let e = t.find(id).await.expect_err(set);
            assert_eq!(corrupt_column(&e), Some(column), "{set}: {e}");
            assert!(e.to_string().contains(&id.to_string()), "the error names the order: {e}");
        }
        t.close().await;
    }

    #[tokio::test]
    async fn a_stored_response_with_an_impossible_status_code_is_corrupt() {
        let t = TestDb::new().await;
        let response = StoredResponse {
            request_body: "{}".into(),
            status_code: StatusCode::ACCEPTED,
            response_body: "{}".into(),
            location: Some("/orders/x".into()),
        };
        let first = response.clone();
        let claimed = t
            .write(move |tx| {
                Box::pin(
                    async move { claim_idempotency_key(tx, "k-1", &first, "2026-01-01T00:00:00Z").await },
                )
            })
            .await
            .unwrap();
        assert!(claimed.is_none());
        let second = response.clone();
        let previous = t
            .write(move |tx| {
                Box::pin(
                    async move { claim_idempotency_key(tx, "k-1", &second, "2026-01-01T00:00:00Z").await },
                )
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (previous.status_code, previous.location.as_deref()),
            (StatusCode::ACCEPTED, Some("/orders/x"))
        );

        t.write(|tx| {
            Box::pin(async move {
                tx.execute("UPDATE idempotency_keys SET status_code = 70000 WHERE idem_key = 'k-1'", &[])
                    .await?;
                Ok(())
            })
        })
        .await
        .unwrap();
        let e = t
            .write(move |tx| {
                Box::pin(
                    async move { claim_idempotency_key(tx, "k-1", &response, "2026-01-01T00:00:00Z").await },
                )
            })
            .await
            .unwrap_err();
        assert_eq!(corrupt_column(&e), Some("status_code"), "{e}");
        t.close().await;
    }

    #[test]
    fn handlers_retry_database_failures_and_corrupt_rows_but_not_values_that_cannot_be_encoded() {
        let transient = |e: StorageError| matches!(HandlerError::from(e), HandlerError::Transient(_));
        assert!(transient(StorageError::Database(SqlError::Aborted)));
        assert!(transient(StorageError::corrupt(
            "orders",
            "o-1",
            "status",
            "unknown order status \"shipped\""
        )));
        let encode = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let encode =
            StorageError::Encode { table: "orders", key: "o-1".into(), column: "items", source: encode };
        assert!(!transient(encode));
    }
}
