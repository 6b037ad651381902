//! One handler per consumed event (the kernel runs each on its standard and express consumer).
//!
//! Every handler follows the same contract: ONE database transaction holds the inbox row (the
//! event id, recorded first), the state change and the outgoing events (outbox); the writer hands
//! the events to the outbox relay once the commit is durable. A redelivered or duplicated event finds its inbox row and commits
//! nothing. Handlers never ack: they return `Ok`, a transient error (database trouble: redeliver
//! later) or a permanent one (business-impossible: dead-letter), and the consumer runtime acts.

pub(crate) mod orders_created;
pub(crate) mod payments_completed;
pub(crate) mod payments_failed;

use orderflow_messaging::HandlerError;

use crate::storage::StorageError;

pub(crate) use orders_created::OrdersCreatedHandler;
pub(crate) use payments_completed::PaymentsCompletedHandler;
pub(crate) use payments_failed::PaymentsFailedHandler;

/// The `source` of every event this service emits.
pub(crate) const SOURCE: &str = "orderflow/inventory-service";

/// The service name in consumer names (`inventory-orders-created`).
pub(crate) const SERVICE: &str = "inventory";

/// Storage failures are transient (they are redelivered, and dead-lettered as `max_deliveries`
/// if they persist), except corrupt rows, which no retry can fix.
impl From<StorageError> for HandlerError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Database(e) => Self::from(e),
            corrupt @ StorageError::Corrupt(_) => Self::permanent(corrupt),
        }
    }
}
