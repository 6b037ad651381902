//! One handler per consumed event; the shared step that moves an order lives here.

pub mod inventory_rejected;
pub mod payments_completed;
pub mod payments_failed;

use orderflow_events::{CancelReason, Event, OrderCancelled, OrderConfirmed, OrderId, Priority};
use orderflow_messaging::{Delivery, HandlerError, OutgoingMessage};
use orderflow_platform::{Tx, inbox, outbox};

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

/// In one transaction (a unit of the database's group commit): inbox row, the order's move,
/// and its `orders.confirmed` / `orders.cancelled` event in the outbox, on the order's lane.
pub async fn finish<T: Event>(
    state: &AppState,
    handler: &'static str,
    cause: &Delivery<T>,
    order_id: OrderId,
    outcome: Outcome,
) -> Result<(), HandlerError> {
    let msg = match &outcome {
        Outcome::Confirmed { total_cents, currency } => cause.follow_up(
            crate::SOURCE,
            OrderConfirmed { order_id, total_cents: *total_cents, currency: currency.clone() },
        ),
        Outcome::Cancelled(reason) => {
            cause.follow_up(crate::SOURCE, OrderCancelled { order_id, reason: *reason })
        }
    }?;
    let event_id = cause.envelope.id.to_string();
    let moved = state
        .db
        .write(move |conn| {
            Box::pin(async move { apply(conn, handler, &event_id, order_id, outcome, msg).await })
        })
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
async fn apply(
    conn: &mut Tx,
    handler: &'static str,
    event_id: &str,
    order_id: OrderId,
    outcome: Outcome,
    msg: OutgoingMessage,
) -> Result<Option<(OrderStatus, &'static str)>, HandlerError> {
    let id = order_id.to_string();
    if !inbox::first_time(conn, handler, event_id).await? {
        tracing::debug!(order_id = %id, "event already processed");
        return Ok(None);
    }
    let Some(order) = storage::find_order(conn, &id).await? else {
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
    let reason = match &outcome {
        Outcome::Confirmed { total_cents, currency } => {
            storage::finish_order(conn, &id, target, None, Some((*total_cents, currency.as_str())), &now)
                .await?;
            "none"
        }
        Outcome::Cancelled(reason) => {
            storage::finish_order(conn, &id, target, Some(reason.as_str()), None, &now).await?;
            reason.as_str()
        }
    };
    // The lane the order was placed on, whatever lane its cause came on.
    let express = order.priority == Priority::Express;
    outbox::enqueue(conn, &msg.on_lane(express)).await?;
    Ok(Some((target, reason)))
}
