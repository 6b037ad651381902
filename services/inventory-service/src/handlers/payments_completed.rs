//! `payments.completed.v1` → the order's reservation is committed: its units move from
//! `reserved` to `committed` and leave the stock for good. No event is emitted.
//!
//! A completed payment for an order without a reservation, or whose reservation was released, is
//! business-impossible (the payment service only charges reserved orders, and a reservation is
//! only released when its payment failed). Nothing is changed and the event is dead-lettered
//! (permanent error) so that an operator sees it; it stays replayable because its inbox row is
//! not committed.

use orderflow_events::PaymentCompleted;
use orderflow_messaging::{Delivery, Handler, HandlerError};
use orderflow_platform::{Tx, inbox};

use crate::domain::{ReservationStatus, Step, stock_moves};
use crate::startup::AppState;
use crate::storage::{products, reservations};

/// Inbox key of this handler.
pub(crate) const INBOX_KEY: &str = "inventory-payments-completed";

/// Handles `payments.completed.v1` on both lanes.
#[derive(Clone, Debug)]
pub(crate) struct PaymentsCompletedHandler {
    state: AppState,
}

impl PaymentsCompletedHandler {
    /// A handler on the service's state.
    #[must_use]
    pub(crate) fn new(state: AppState) -> Self {
        Self { state }
    }

    /// The unit of work (one savepoint of the group commit).
    async fn apply(conn: &mut Tx, delivery: &Delivery<PaymentCompleted>) -> Result<(), HandlerError> {
        let payment = &delivery.envelope.data;
        if !inbox::first_time(conn, INBOX_KEY, &delivery.envelope.id.to_string()).await? {
            return Ok(());
        }
        let Some(reservation) = reservations::find(conn, payment.order_id).await? else {
            tracing::error!("payment completed for an order without a reservation");
            return Err(HandlerError::permanent(format!(
                "payments.completed for order {} which has no reservation",
                payment.order_id
            )));
        };
        match reservation.status.commit() {
            Ok(Step::AlreadyDone) => {
                tracing::debug!("reservation already committed");
                return Ok(());
            }
            Err(e) => {
                tracing::error!(error = %e, "payment completed for a reservation that cannot be committed");
                return Err(HandlerError::permanent(format!("order {}: {e}", payment.order_id)));
            }
            Ok(Step::Apply) => {}
        }
        if payment.amount_cents != reservation.total_cents || payment.currency != reservation.currency {
            // The charge is the payment service's business; stock is committed either way.
            tracing::warn!(
                charged = payment.amount_cents,
                charged_currency = %payment.currency,
                reserved = reservation.total_cents,
                reserved_currency = %reservation.currency,
                "charged amount differs from the reservation total"
            );
        }
        let (from, to) = (ReservationStatus::Reserved, ReservationStatus::Committed);
        if !reservations::transition(conn, payment.order_id, from, to).await? {
            // Moved by a concurrent delivery since we read it: look again on redelivery.
            return Err(HandlerError::transient("reservation changed concurrently"));
        }
        for line in stock_moves(&reservation.lines) {
            if !products::commit(conn, &line.product_id, line.quantity).await? {
                tracing::error!(product_id = %line.product_id, "reserved stock is missing; invariant broken");
                return Err(HandlerError::permanent(format!(
                    "product {} has fewer than {} reserved units for order {}",
                    line.product_id, line.quantity, payment.order_id
                )));
            }
        }
        tracing::debug!(reservation_id = %reservation.reservation_id, "reservation committed");
        Ok(())
    }
}

impl Handler<PaymentCompleted> for PaymentsCompletedHandler {
    async fn handle(&self, delivery: Delivery<PaymentCompleted>) -> Result<(), HandlerError> {
        Ok(self
            .state
            .db
            .write(move |conn| Box::pin(async move { Self::apply(conn, &delivery).await }))
            .await?)
    }
}
