//! One handler for every folded event: the event's fact and its inbox row commit in one
//! transaction (through the writer's group commit), then the runtime acks. A redelivered or
//! duplicated event finds its inbox row and changes nothing.

use orderflow_messaging::{Delivery, Handler, HandlerError};
use orderflow_platform::Db;

use crate::fold::{self, Foldable};

/// Folds every [`Foldable`] event into the store.
#[derive(Clone, Debug)]
pub struct FoldHandler {
    db: Db,
}

impl FoldHandler {
    /// A handler on `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl<T: Foldable> Handler<T> for FoldHandler {
    async fn handle(&self, delivery: Delivery<T>) -> Result<(), HandlerError> {
        let folded = fold::fold_event(&self.db, &delivery.envelope).await?;
        if !folded {
            tracing::debug!("event folded before; skipped");
        }
        Ok(())
    }
}
