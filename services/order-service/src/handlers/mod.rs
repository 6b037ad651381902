//! One handler per consumed event; the shared step that moves an order lives here.

pub(crate) mod inventory_rejected;
pub(crate) mod payments_completed;
pub(crate) mod payments_failed;

use orderflow_events::v2::{CancelReason, OrderCancelled};
use orderflow_events::{Event, Money, OrderConfirmed, OrderId, Priority};
use orderflow_messaging::{Delivery, HandlerError, OutgoingMessage};
use orderflow_platform::{Tx, inbox, outbox};

use orderflow_telemetry::metrics::names;

use crate::domain::{OrderStatus, Transition, transition};
use crate::startup::AppState;
use crate::storage::{self, Finish, StorageError};

/// Database failures are transient, as every database error in a handler is (see
/// `orderflow_platform`'s `From<SqlError> for HandlerError`).
///
/// A corrupt row is transient too, although retrying does not change the row. It is the
/// service's own data, not the event's fault: the event is valid, and dead-lettering it at once
/// would file a healthy message as poison while the order it concerns stays stuck. Redelivered,
/// it succeeds as soon as the row is repaired, or reaches an instance that knows the value (a
/// status written by a newer version during a rolling deploy); if neither happens the
/// redelivery budget still ends in the DLQ (`max_deliveries`), from where it can be replayed.
/// Each attempt logs the corruption at ERROR, so it is not silent meanwhile.
///
/// A value that cannot be encoded is permanent: the same event yields the same value, and
/// encoding it fails the same way on every attempt.
impl From<StorageError> for HandlerError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Database(e) => Self::from(e),
            corrupt @ StorageError::Corrupt { .. } => {
                tracing::error!(error = %corrupt, "a stored order does not decode; redelivering the event");
                Self::transient(corrupt)
            }
            encode @ StorageError::Encode { .. } => Self::permanent(encode),
        }
    }
}

/// How an event ends an order.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Paid: confirmed with the charged total.
    Confirmed(Money),
    /// Rejected or compensated.
    Cancelled(CancelReason),
}

impl Outcome {
    /// The storage's view of it.
    fn finish(&self) -> Finish<'_> {
        match self {
            Self::Confirmed(total) => Finish::Confirmed(total),
            Self::Cancelled(reason) => Finish::Cancelled(*reason),
        }
    }
}

/// In one transaction (a unit of the database's group commit): inbox row, the order's move,
/// and its `orders.confirmed` / `orders.cancelled` event in the outbox, on the order's lane.
pub(crate) async fn finish<T: Event>(
    state: &AppState,
    handler: &'static str,
    cause: &Delivery<T>,
    order_id: OrderId,
    outcome: Outcome,
) -> Result<(), HandlerError> {
    let msgs = match &outcome {
        Outcome::Confirmed(total) => cause.follow_up(
            crate::SOURCE,
            OrderConfirmed { order_id, total_cents: total.cents(), currency: total.currency().clone() },
        ),
        Outcome::Cancelled(reason) => {
            cause.follow_up(crate::SOURCE, OrderCancelled { order_id, reason: *reason })
        }
    }?;
    let event_id = cause.envelope.id.to_string();
    let moved = state
        .db
        .write(move |conn| {
            Box::pin(async move { apply(conn, handler, &event_id, order_id, outcome, msgs).await })
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
    msgs: Vec<OutgoingMessage>,
) -> Result<Option<(OrderStatus, &'static str)>, HandlerError> {
    if !inbox::first_time(conn, handler, event_id).await? {
        tracing::debug!(%order_id, "event already processed");
        return Ok(None);
    }
    let Some(order) = storage::find_order(conn, order_id).await? else {
        return Err(HandlerError::permanent(format!("order {order_id} does not exist")));
    };
    let finish = outcome.finish();
    let target = finish.status();
    match transition(order.status, target) {
        Transition::AlreadyDone => return Ok(None),
        Transition::Conflict => {
            return Err(HandlerError::permanent(format!(
                "order {order_id} is {} and cannot become {}",
                order.status.as_str(),
                target.as_str()
            )));
        }
        Transition::Apply => {}
    }
    let now = orderflow_platform::now_rfc3339();
    storage::finish_order(conn, order_id, finish, &now).await?;
    let reason = match finish {
        Finish::Confirmed(_) => "none",
        Finish::Cancelled(reason) => reason.as_str(),
    };
    // The lane the order was placed on, whatever lane its cause came on.
    let express = order.priority == Priority::Express;
    for msg in msgs {
        outbox::enqueue(conn, &msg.on_lane(express)).await?;
    }
    Ok(Some((target, reason)))
}
