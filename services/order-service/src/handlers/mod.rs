//! One handler per consumed event; the shared step that moves an order lives here.

pub mod inventory_rejected;
pub mod payments_completed;
pub mod payments_failed;

use orderflow_events::{CancelReason, Envelope, Event, OrderCancelled, OrderConfirmed, OrderId};
use orderflow_messaging::publish::follow_up;
use orderflow_messaging::{HandlerError, OutgoingMessage};
use orderflow_platform::{SqlError, Tx, inbox, outbox};

use orderflow_telemetry::metrics::names;

use crate::domain::{OrderStatus, Transition, transition};
use crate::startup::AppState;
use crate::storage;

/// How an event ends an order.
#[derive(Debug)]
pub enum Outcome {
    /// Paid: confirmed with the charged total.
    Confirmed {
        /// Total in cents.
        total_cents: i64,
        /// Currency.
        currency: orderflow_events::Currency,
    },
    /// Rejected or compensated.
    Cancelled(CancelReason),
}

/// Every database error is retried: giving up on an event at once would lose it for good, and
/// the redelivery budget still ends in the DLQ if the error never heals.
pub(crate) fn db_error(e: SqlError) -> HandlerError {
    if !e.is_transient() {
        tracing::warn!(error = %e, "unexpected database error; will retry");
    }
    HandlerError::transient(e)
}

/// In one transaction (a unit of the database's group commit): inbox row, the order's move,
/// and its `orders.confirmed` / `orders.cancelled` event in the outbox.
pub async fn finish<T: Event>(
    state: &AppState,
    handler: &'static str,
    incoming: Envelope<T>,
    order_id: OrderId,
    outcome: Outcome,
) -> Result<(), HandlerError> {
    let moved = state
        .db
        .write(move |conn| Box::pin(async move { apply(conn, handler, &incoming, order_id, outcome).await }))
        .await?;
    let Some((target, reason)) = moved else { return Ok(()) };
    metrics::counter!(
        names::ORDERS_TERMINAL,
        "service" => "order-service",
        "status" => target.as_str(),
        "reason" => reason
    )
    .increment(1);
    // The consumer's span carries the order and correlation ids.
    tracing::info!(status = target.as_str(), reason, "order finished");
    Ok(())
}

/// The unit of work of [`finish`]; `Some((status, reason))` when the order moved.
async fn apply<T: Event>(
    conn: &mut Tx,
    handler: &'static str,
    incoming: &Envelope<T>,
    order_id: OrderId,
    outcome: Outcome,
) -> Result<Option<(OrderStatus, &'static str)>, HandlerError> {
    let id = order_id.to_string();
    if !inbox::first_time(conn, handler, &incoming.id.to_string()).await.map_err(db_error)? {
        tracing::debug!(order_id = %id, "event already processed");
        return Ok(None);
    }
    let Some(order) = storage::find_order(conn, &id).await.map_err(db_error)? else {
        return Err(HandlerError::permanent(format!("order {id} does not exist")));
    };
    let target = match outcome {
        Outcome::Confirmed { .. } => OrderStatus::Confirmed,
        Outcome::Cancelled(_) => OrderStatus::Cancelled,
    };
    match transition(order.status, target) {
        Transition::AlreadyDone => return Ok(None),
        Transition::Conflict => {
            return Err(HandlerError::permanent(format!(
                "order {id} is {} and cannot become {}",
                order.status.as_str(),
                target.as_str()
            )));
        }
        Transition::Apply => {}
    }
    let now = orderflow_platform::now_rfc3339();
    let express = order.priority == "express";
    let msg = match &outcome {
        Outcome::Confirmed { total_cents, currency } => {
            storage::finish_order(conn, &id, target, None, Some((*total_cents, currency.as_str())), &now)
                .await
                .map_err(db_error)?;
            let data = OrderConfirmed { order_id, total_cents: *total_cents, currency: currency.clone() };
            OutgoingMessage::from_envelope(&follow_up(crate::SOURCE, incoming, data), express)
        }
        Outcome::Cancelled(reason) => {
            storage::finish_order(conn, &id, target, Some(reason.as_str()), None, &now)
                .await
                .map_err(db_error)?;
            let data = OrderCancelled { order_id, reason: *reason };
            OutgoingMessage::from_envelope(&follow_up(crate::SOURCE, incoming, data), express)
        }
    }
    .map_err(HandlerError::permanent)?;
    outbox::enqueue(conn, &msg).await.map_err(db_error)?;
    let reason = match &outcome {
        Outcome::Confirmed { .. } => "none",
        Outcome::Cancelled(r) => r.as_str(),
    };
    Ok(Some((target, reason)))
}
