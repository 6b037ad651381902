//! The inbox: makes every event handler idempotent.
//!
//! A handler calls [`first_time`] inside the transaction that applies the event's effect. The
//! first call for a `(handler, event id)` pair inserts a row and returns `true`; any later call
//! (a redelivery, a duplicate publish, a DLQ replay of an event that did go through) returns
//! `false`, and the handler commits nothing else. Because the row and the effect commit together,
//! there is no window in which one exists without the other.

use crate::args;
use crate::sql::{SqlError, Tx};

/// Records that `handler` processed `event_id`; `true` the first time, `false` after.
pub async fn first_time(tx: &mut Tx, handler: &str, event_id: &str) -> Result<bool, SqlError> {
    let now = crate::now_rfc3339();
    let inserted = tx
        .execute(
            "INSERT INTO inbox (handler, event_id, processed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (handler, event_id) DO NOTHING",
            args![handler, event_id, &now],
        )
        .await?;
    Ok(inserted == 1)
}
