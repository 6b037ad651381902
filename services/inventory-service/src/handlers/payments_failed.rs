//! `payments.failed.v1` → compensation: the order's reservation is released (its units go back
//! to `available`) and `inventory.released.v1` announces it, on the order's lane.
//!
//! A failed payment for an order without a reservation, or whose reservation was committed, is
//! business-impossible; it is dead-lettered (permanent error) with nothing changed.

use orderflow_events::PaymentFailed;
use orderflow_messaging::{Delivery, Handler, HandlerError};
use orderflow_platform::{Tx, inbox, outbox};

use super::SOURCE;
use crate::domain::{ReservationStatus, Step, stock_moves};
use crate::startup::AppState;
use crate::storage::{products, reservations};

/// Inbox key of this handler.
pub(crate) const INBOX_KEY: &str = "inventory-payments-failed";

/// Handles `payments.failed.v1` on both lanes.
#[derive(Clone, Debug)]
pub(crate) struct PaymentsFailedHandler {
    state: AppState,
}

impl PaymentsFailedHandler {
    /// A handler on the service's state.
    #[must_use]
    pub(crate) fn new(state: AppState) -> Self {
        Self { state }
    }

    /// The unit of work (one savepoint of the group commit).
    async fn apply(conn: &mut Tx, delivery: &Delivery<PaymentFailed>) -> Result<(), HandlerError> {
        let failure = &delivery.envelope.data;
        if !inbox::first_time(conn, INBOX_KEY, &delivery.envelope.id.to_string()).await? {
            return Ok(());
        }
        let Some(reservation) = reservations::find(conn, failure.order_id).await? else {
            tracing::error!("payment failed for an order without a reservation");
            return Err(HandlerError::permanent(format!(
                "payments.failed for order {} which has no reservation",
                failure.order_id
            )));
        };
        match reservation.status.release() {
            Ok(Step::AlreadyDone) => {
                tracing::debug!("reservation already released");
                return Ok(());
            }
            Err(e) => {
                tracing::error!(error = %e, "payment failed for a reservation that cannot be released");
                return Err(HandlerError::permanent(format!("order {}: {e}", failure.order_id)));
            }
            Ok(Step::Apply) => {}
        }
        let (from, to) = (ReservationStatus::Reserved, ReservationStatus::Released);
        if !reservations::transition(conn, failure.order_id, from, to).await? {
            return Err(HandlerError::transient("reservation changed concurrently"));
        }
        for line in stock_moves(&reservation.lines) {
            if !products::release(conn, &line.product_id, line.quantity).await? {
                tracing::error!(product_id = %line.product_id, "reserved stock is missing; invariant broken");
                return Err(HandlerError::permanent(format!(
                    "product {} has fewer than {} reserved units for order {}",
                    line.product_id, line.quantity, failure.order_id
                )));
            }
        }
        let released = reservation.released_event();
        outbox::enqueue_all(conn, &delivery.follow_up_on(SOURCE, released, reservation.express)?).await?;
        tracing::info!(reservation_id = %reservation.reservation_id, reason = ?failure.reason, "reservation released");
        Ok(())
    }
}

impl Handler<PaymentFailed> for PaymentsFailedHandler {
    async fn handle(&self, delivery: Delivery<PaymentFailed>) -> Result<(), HandlerError> {
        Ok(self
            .state
            .db
            .write(move |conn| Box::pin(async move { Self::apply(conn, &delivery).await }))
            .await?)
    }
}
