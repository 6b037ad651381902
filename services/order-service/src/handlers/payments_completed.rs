//! `payments.completed.v1` → the order is confirmed with the charged total.

use orderflow_events::PaymentCompleted;
use orderflow_messaging::{Delivery, HandlerError};

use super::{Outcome, finish};
use crate::startup::AppState;

/// Inbox key of this handler.
pub const HANDLER: &str = "order:payments.completed.v1";

/// Handles one delivery.
pub async fn handle(state: AppState, d: Delivery<PaymentCompleted>) -> Result<(), HandlerError> {
    let data = &d.envelope.data;
    let outcome = Outcome::Confirmed { total_cents: data.amount_cents, currency: data.currency.clone() };
    let order_id = data.order_id;
    finish(&state, HANDLER, &d, order_id, outcome).await
}
