//! `payments.completed.v1` → the order is confirmed with the charged total.

use orderflow_events::{Money, PaymentCompleted};
use orderflow_messaging::{Delivery, HandlerError};

use super::{Outcome, finish};
use crate::startup::AppState;

/// Inbox key of this handler.
pub(crate) const HANDLER: &str = "order:payments.completed.v1";

/// Handles one delivery.
pub(crate) async fn handle(state: AppState, d: Delivery<PaymentCompleted>) -> Result<(), HandlerError> {
    let data = &d.envelope.data;
    // The decoder already refused a negative amount; one here would break the event's contract.
    let total = Money::new(data.amount_cents, data.currency.clone())
        .map_err(|e| HandlerError::permanent(format!("amount_cents {}: {e}", data.amount_cents)))?;
    let outcome = Outcome::Confirmed(total);
    let order_id = data.order_id;
    finish(&state, HANDLER, &d, order_id, outcome).await
}
