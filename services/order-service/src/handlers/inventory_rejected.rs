//! `inventory.rejected` (v1 or v2) → the order is cancelled with the inventory's reason.

use orderflow_events::v2::InventoryRejected;
use orderflow_messaging::{Delivery, HandlerError};

use super::{Outcome, finish};
use crate::startup::AppState;

/// Inbox key of this handler.
pub(crate) const HANDLER: &str = "order:inventory.rejected.v1";

/// Handles one delivery.
pub(crate) async fn handle(state: AppState, d: Delivery<InventoryRejected>) -> Result<(), HandlerError> {
    let (order_id, outcome) = (d.envelope.data.order_id, Outcome::Cancelled(d.envelope.data.reason.into()));
    finish(&state, HANDLER, &d, order_id, outcome).await
}
