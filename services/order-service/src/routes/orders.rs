//! `POST /orders` and `GET /orders/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use orderflow_events::v2::{CancelReason, OrderCreated};
use orderflow_events::{
    Currency, CustomerId, EventKind, OrderId, OrderItem, Priority, ProductId, Quantity, Version,
    v1::MAX_LINES,
};
use orderflow_platform::http::{ApiJson, Problem, ProblemType, RequestCorrelation, RequestTrace};
use orderflow_platform::{WriteError, outbox};
use orderflow_telemetry::metrics::names;
use serde::{Deserialize, Serialize};

use crate::domain::OrderStatus;
use crate::startup::AppState;
use crate::storage::{self, NewOrder, OrderRow, StatusChange, StorageError, StoredResponse};

/// Units of work waiting for the database beyond which new orders are refused with `503` and
/// `Retry-After` (admission control). The writer commits up to 256 units at a time, so this is
/// a couple of group commits of backlog — ~100 ms here — not a queue that grows without bound
/// while the handlers that finish orders wait behind it.
pub(crate) const MAX_QUEUED_WRITES: usize = 512;

/// Longest accepted `Idempotency-Key`.
const MAX_KEY_LEN: usize = 255;

/// The body of `POST /orders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateOrder {
    /// Who orders.
    pub(crate) customer_id: CustomerId,
    /// 1–100 lines.
    pub(crate) items: Vec<Item>,
    /// `standard` (default) or `express`.
    #[serde(default)]
    pub(crate) priority: Priority,
    /// The currency the customer pays in (ISO 4217); absent or `null`: the products' own.
    #[serde(default)]
    pub(crate) currency: Option<Currency>,
}

/// One line of an order.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Item {
    /// Product id, 1–64 characters.
    pub(crate) product_id: ProductId,
    /// 1 ..= 1,000,000.
    pub(crate) quantity: Quantity,
}

#[derive(Serialize)]
struct Accepted<'a> {
    order_id: &'a str,
    status: &'static str,
}

/// The order as `GET /orders/{id}` shows it.
#[derive(Debug, Serialize)]
pub(crate) struct OrderView {
    order_id: OrderId,
    customer_id: CustomerId,
    items: Vec<OrderItem>,
    priority: Priority,
    status: OrderStatus,
    reason: Option<CancelReason>,
    total_cents: Option<i64>,
    currency: Option<Currency>,
    history: Vec<HistoryEntry>,
    created_at: String,
    updated_at: String,
}

impl OrderView {
    fn new(order: OrderRow, history: Vec<StatusChange>) -> Self {
        let (total_cents, currency) = match order.total {
            Some(total) => (Some(total.cents()), Some(total.currency().clone())),
            None => (None, None),
        };
        Self {
            order_id: order.order_id,
            customer_id: order.customer_id,
            items: order.items,
            priority: order.priority,
            status: order.status,
            reason: order.reason,
            total_cents,
            currency,
            history: history.into_iter().map(|h| HistoryEntry { status: h.status, at: h.at }).collect(),
            created_at: order.created_at,
            updated_at: order.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
struct HistoryEntry {
    status: OrderStatus,
    at: String,
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    match v.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k.to_owned()))
        }
        _ => Err(Problem::new(
            ProblemType::InvalidParameter,
            format!("Idempotency-Key must be 1-{MAX_KEY_LEN} visible ASCII characters"),
        )),
    }
}

fn stored_into_response(s: &StoredResponse) -> Response {
    let mut res = (s.status_code, s.response_body.clone()).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(loc) = s.location.as_deref().and_then(|l| HeaderValue::from_str(l).ok()) {
        res.headers_mut().insert(header::LOCATION, loc);
    }
    res
}

/// `POST /orders`: validates, then writes the order, its `orders.created.v1` event and the
/// idempotency record in one transaction.
pub(crate) async fn create_order(
    State(state): State<AppState>,
    RequestCorrelation(correlation): RequestCorrelation,
    RequestTrace(trace): RequestTrace,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateOrder>,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    if state.db.write_queue() > MAX_QUEUED_WRITES
        || (state.max_saga_backlog > 0 && state.saga_backlog.get() > state.max_saga_backlog)
    {
        return Ok(overloaded());
    }
    if body.items.is_empty() || body.items.len() > MAX_LINES {
        return Err(Problem::invalid_field("items", format!("must have 1 to {MAX_LINES} lines")));
    }
    let order_id = OrderId::new();
    let items: Vec<OrderItem> = body
        .items
        .iter()
        .map(|i| OrderItem { product_id: i.product_id.clone(), quantity: i.quantity })
        .collect();
    if body.currency.is_some() && !state.events.publishes(EventKind::OrdersCreated, Version::V2) {
        return Err(Problem::invalid_field(
            "currency",
            "this deployment publishes orders.created only as v1, which cannot carry a currency \
             (events.publish must list v2)",
        ));
    }
    let created = OrderCreated::new(
        order_id,
        body.customer_id.clone(),
        items.clone(),
        body.priority,
        body.currency.clone(),
    )
    .map_err(|e| Problem::invalid_field("items", e.to_string()))?;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let envelope =
        orderflow_messaging::publish::originate(crate::SOURCE, correlation.clone(), &trace, created);
    let express = body.priority == Priority::Express;
    let msgs = state.events.messages(&envelope, express).map_err(|e| Problem::internal(&e))?;

    let id = order_id.to_string();
    let location = format!("/orders/{id}");
    let response_body = serde_json::to_string(&Accepted { order_id: &id, status: "pending" })
        .map_err(|e| Problem::internal(&e))?;
    // The canonical form of the request: same key + same canonical body = same request.
    let mut canonical = serde_json::json!({
        "customer_id": body.customer_id.as_str(),
        "items": serde_json::to_value(&body.items).map_err(|e| Problem::internal(&e))?,
        "priority": body.priority.as_str(),
    });
    // Only when given, so that a request stored before orders had a currency canonicalizes as
    // it did then.
    if let (Some(currency), Some(fields)) = (&body.currency, canonical.as_object_mut()) {
        fields.insert("currency".to_owned(), currency.as_str().into());
    }
    let canonical = serde_json::to_string(&canonical).map_err(|e| Problem::internal(&e))?;
    let now = orderflow_platform::now_rfc3339();

    // The idempotency record, the order and its event: one unit of the group commit, answered
    // only once it is durable.
    let claim = key.map(|key| {
        let stored = StoredResponse {
            request_body: canonical.clone(),
            status_code: StatusCode::ACCEPTED,
            response_body: response_body.clone(),
            location: Some(location.clone()),
        };
        (key, stored)
    });
    let (customer_id, priority) = (body.customer_id.clone(), body.priority);
    let written = state
        .db
        .write(move |conn| {
            Box::pin(async move {
                if let Some((key, stored)) = &claim
                    && let Some(previous) = storage::claim_idempotency_key(conn, key, stored, &now).await?
                {
                    return Ok(Some(previous));
                }
                let new = NewOrder {
                    order_id,
                    customer_id: &customer_id,
                    items: &items,
                    priority,
                    correlation_id: &correlation,
                    now: &now,
                };
                storage::insert_order(conn, &new).await?;
                outbox::enqueue_all(conn, &msgs).await?;
                Ok::<_, StorageError>(None)
            })
        })
        .await;
    match written {
        Ok(None) => {}
        Ok(Some(previous)) => {
            if previous.request_body != canonical {
                return Err(Problem::new(
                    ProblemType::IdempotencyKeyReused,
                    "this Idempotency-Key was used with a different request body",
                ));
            }
            return Ok(stored_into_response(&previous));
        }
        Err(WriteError::Unit(e)) => return Err(storage_problem(e)),
        Err(e @ WriteError::Aborted) => return Err(unavailable(&e)),
    }
    metrics::counter!(names::ORDERS_ACCEPTED, "service" => "order-service", "priority" => body.priority.as_str())
        .increment(1);
    // The request's span carries the order and correlation ids.
    tracing::info!("order accepted");

    Ok(stored_into_response(&StoredResponse {
        request_body: canonical,
        status_code: StatusCode::ACCEPTED,
        response_body,
        location: Some(location),
    }))
}

/// `503` + `Retry-After: 1`: the database is behind; nothing was stored, retrying (with the same
/// Idempotency-Key) is safe.
fn overloaded() -> Response {
    // Counted by the HTTP metrics (route and status 503).
    Problem::new(
        ProblemType::Unavailable,
        "too many orders are waiting to be stored; retry shortly with the same Idempotency-Key",
    )
    .retry_after(1)
}

/// The one mapping of a storage failure to the response. A database failure is `503`: the
/// client's cue to retry (with the same Idempotency-Key), nothing was committed. A corrupt stored
/// row or a value that cannot be encoded is `500` (logged, not shown): retrying the request
/// meets the same row or value again.
fn storage_problem(e: StorageError) -> Problem {
    match e {
        StorageError::Database(e) => unavailable(&e),
        e @ (StorageError::Corrupt { .. } | StorageError::Encode { .. }) => Problem::internal(&e),
    }
}

/// A database failure is the client's cue to retry (with the same Idempotency-Key), not a 500:
/// nothing was committed.
fn unavailable(e: &dyn std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "order storage failed");
    Problem::new(
        ProblemType::Unavailable,
        "the order could not be stored; retry with the same Idempotency-Key",
    )
}

/// `GET /orders/{id}`.
pub(crate) async fn get_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, Problem> {
    let order_id = OrderId::parse(&id).map_err(|_| {
        Problem::new(ProblemType::InvalidParameter, format!("{id:?} is not an order id (a UUID)"))
    })?;
    let found = state
        .db
        .read(move |tx| {
            Box::pin(async move {
                let Some(order) = storage::find_order(tx, order_id).await? else { return Ok(None) };
                let history = storage::history(tx, order_id).await?;
                Ok::<_, StorageError>(Some((order, history)))
            })
        })
        .await
        .map_err(storage_problem)?;
    let Some((order, history)) = found else {
        return Err(Problem::new(ProblemType::NotFound, format!("no order {order_id}")));
    };
    Ok(Json(OrderView::new(order, history)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use orderflow_events::{CorrelationId, Money};

    use super::*;

    fn row(status: OrderStatus, reason: Option<CancelReason>, total: Option<Money>) -> OrderRow {
        OrderRow {
            order_id: OrderId::parse("0191e3a0-0000-7000-8000-000000000001").unwrap(),
            customer_id: CustomerId::parse("c-1").unwrap(),
            items: vec![OrderItem {
                product_id: ProductId::parse("sku-1").unwrap(),
                quantity: Quantity::parse(2).unwrap(),
            }],
            priority: Priority::Express,
            status,
            reason,
            total,
            correlation_id: CorrelationId::parse("corr-1").unwrap(),
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:01Z".into(),
        }
    }

    fn history(last: OrderStatus) -> Vec<StatusChange> {
        vec![
            StatusChange { status: OrderStatus::Pending, at: "2026-01-01T00:00:00Z".into() },
            StatusChange { status: last, at: "2026-01-01T00:00:01Z".into() },
        ]
    }

    #[test]
    fn an_order_is_shown_with_the_same_fields_and_values_as_ever() {
        let total = Money::new(2_500, orderflow_events::Currency::usd()).unwrap();
        let confirmed =
            OrderView::new(row(OrderStatus::Confirmed, None, Some(total)), history(OrderStatus::Confirmed));
        assert_eq!(
            serde_json::to_string(&confirmed).unwrap(),
            concat!(
                r#"{"order_id":"0191e3a0-0000-7000-8000-000000000001","customer_id":"c-1","#,
                r#""items":[{"product_id":"sku-1","quantity":2}],"priority":"express","status":"confirmed","#,
                r#""reason":null,"total_cents":2500,"currency":"USD","#,
                r#""history":[{"status":"pending","at":"2026-01-01T00:00:00Z"},"#,
                r#"{"status":"confirmed","at":"2026-01-01T00:00:01Z"}],"#,
                r#""created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:01Z"}"#
            )
        );
        let cancelled = OrderView::new(
            row(OrderStatus::Cancelled, Some(CancelReason::PaymentDeclined), None),
            history(OrderStatus::Cancelled),
        );
        let json = serde_json::to_value(&cancelled).unwrap();
        assert_eq!(
            (&json["status"], &json["reason"], &json["total_cents"], &json["currency"]),
            (
                &"cancelled".into(),
                &"payment_declined".into(),
                &serde_json::Value::Null,
                &serde_json::Value::Null
            )
        );
    }

    #[test]
    fn a_corrupt_row_is_a_500_and_a_database_failure_a_503() {
        let corrupt = StorageError::Corrupt {
            table: "orders",
            key: "o-1".into(),
            column: "status",
            problem: "unknown order status \"shipped\"".into(),
        };
        assert_eq!(storage_problem(corrupt).status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        let down = StorageError::Database(orderflow_platform::SqlError::Aborted);
        assert_eq!(storage_problem(down).status_code(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
