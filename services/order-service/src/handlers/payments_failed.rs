//! `payments.failed.v1` → the order is cancelled (`payment_declined` / `payment_unavailable`).

use orderflow_events::PaymentFailed;
use orderflow_messaging::{Delivery, HandlerError};

use super::{Outcome, finish};
use crate::startup::AppState;

/// Inbox key of this handler.
pub(crate) const HANDLER: &str = "order:payments.failed.v1";

/// Handles one delivery.
pub(crate) async fn handle(state: AppState, d: Delivery<PaymentFailed>) -> Result<(), HandlerError> {
    let (order_id, outcome) = (d.envelope.data.order_id, Outcome::Cancelled(d.envelope.data.reason.into()));
    finish(&state, HANDLER, &d, order_id, outcome).await
}
