//! One handler per consumed event (the kernel runs each on its standard and express consumer).
//!
//! Every handler follows the same contract: ONE database transaction holds the inbox row (the
//! event id, recorded first), the state change and the outgoing events (outbox); the writer hands
//! the events to the outbox relay once the commit is durable. A redelivered or duplicated event finds its inbox row and commits
//! nothing. Handlers never ack: they return `Ok`, a transient error (database trouble: redeliver
//! later) or a permanent one (business-impossible: dead-letter), and the consumer runtime acts.

pub mod orders_created;
pub mod payments_completed;
pub mod payments_failed;

use futures_util::future::BoxFuture;
use orderflow_events::Event;
use orderflow_messaging::{Delivery, HandlerError, OutgoingMessage};
use orderflow_platform::Db;
use orderflow_platform::Tx;

use crate::storage::StorageError;

pub use orders_created::OrdersCreatedHandler;
pub use payments_completed::PaymentsCompletedHandler;
pub use payments_failed::PaymentsFailedHandler;

/// The `source` of every event this service emits.
pub const SOURCE: &str = "orderflow/inventory-service";

/// The service name in consumer names (`inventory-orders-created`).
pub const SERVICE: &str = "inventory";

/// What every handler needs.
#[derive(Clone, Debug)]
pub struct HandlerContext {
    /// The service's database.
    pub db: Db,
}

impl HandlerContext {
    /// Runs a handler's unit of work in the next group commit; its events reach the outbox
    /// relay once it committed.
    pub(crate) async fn commit<F>(&self, unit: F) -> Result<(), HandlerError>
    where
        F: for<'c> FnOnce(&'c mut Tx) -> BoxFuture<'c, Result<(), HandlerError>> + Send + 'static,
    {
        Ok(self.db.write(unit).await?)
    }
}

/// Storage failures are transient (they are redelivered, and dead-lettered as `max_deliveries`
/// if they persist), except corrupt rows, which no retry can fix.
pub(crate) fn storage(e: impl Into<StorageError>) -> HandlerError {
    match e.into() {
        StorageError::Database(e) => {
            if !e.is_transient() {
                tracing::warn!(error = %e, "unexpected database error; treating it as transient");
            }
            HandlerError::transient(e)
        }
        corrupt @ StorageError::Corrupt(_) => HandlerError::permanent(corrupt),
    }
}

/// Builds the outgoing message for `data`, caused by `cause`: same correlation id and trace
/// context, on the express lane if `express`.
pub(crate) fn outgoing<C, T: Event>(
    cause: &Delivery<C>,
    data: T,
    express: bool,
) -> Result<OutgoingMessage, HandlerError> {
    let envelope = orderflow_messaging::publish::follow_up(SOURCE, &cause.envelope, data);
    // Serializing our own types cannot fail in practice; if it did, retrying would not help.
    OutgoingMessage::from_envelope(&envelope, express).map_err(HandlerError::permanent)
}

/// Enqueues `msg` in the transaction.
pub(crate) async fn enqueue(conn: &mut Tx, msg: &OutgoingMessage) -> Result<(), HandlerError> {
    orderflow_platform::outbox::enqueue(conn, msg).await.map_err(storage)
}

/// Records the event in the inbox; `false` if it was processed before.
pub(crate) async fn first_time(conn: &mut Tx, handler: &str, event_id: &str) -> Result<bool, HandlerError> {
    orderflow_platform::inbox::first_time(conn, handler, event_id).await.map_err(storage)
}
