//! One handler per consumed event.

pub(crate) mod inventory_reserved;

use orderflow_messaging::HandlerError;

use crate::storage::StorageError;

/// Storage failures are transient, as every database error in a handler is (see
/// `orderflow_platform`'s `From<SqlError> for HandlerError`): the event is redelivered, and
/// dead-lettered as `max_deliveries` if the database never heals.
impl From<StorageError> for HandlerError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Database(e) => Self::from(e),
        }
    }
}
