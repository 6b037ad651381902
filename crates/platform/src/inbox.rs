//! The inbox: makes every event handler idempotent, and forgets what can no longer come back.
//!
//! A handler calls [`first_time`] inside the transaction that applies the event's effect. The
//! first call for a `(handler, event id)` pair inserts a row and returns `true`; any later call
//! (a redelivery, a duplicate publish, a DLQ replay of an event that did go through) returns
//! `false`, and the handler commits nothing else. Because the row and the effect commit together,
//! there is no window in which one exists without the other.
//!
//! Rows are pruned once they are older than [`horizon`]: the longest time after processing at
//! which a copy of the event can still be delivered
//! ([`redelivery_horizon`](orderflow_messaging::topology::redelivery_horizon): redeliveries, the
//! duplicate window, a consumer recreated from the start of its stream, a DLQ replay), plus a
//! day of margin. About 22 days with today's stream limits; it follows them when they change.
//! Inventory's order claims (`inventory-orders-created:order`, keyed by order id) are pruned on
//! the same horizon: the events that claim one order are the twins of one outbox transaction
//! (both versions of a dual-published `orders.created`), so every copy of either arrives by the
//! same bounded paths as the event that first claimed it.
//!
//! Pruning runs in the background (`prune_in_background`, started by the kernel for every
//! service) in units of [`PRUNE_BATCH`] rows, each its own unit of work in the writer's group
//! commit, so it never holds the writer for more than a small delete.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::args;
use crate::sql::{SqlError, Tx};
use crate::{Db, WriteError};

/// Margin on top of the redelivery horizon: handler time (minutes at most), clock steps between
/// instances, a replay decided on the last day the DLQ keeps a letter.
pub const HORIZON_MARGIN: Duration = Duration::from_secs(24 * 3600);
/// Rows deleted per unit of work: a few milliseconds of the writer on either database.
pub const PRUNE_BATCH: i64 = 1000;
/// How often the background task prunes.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Delay before the first prune after start-up, so it does not compete with it.
const FIRST_PRUNE_AFTER: Duration = Duration::from_secs(60);

/// How long an inbox row is kept (see the module docs).
pub fn horizon() -> Duration {
    orderflow_messaging::topology::redelivery_horizon().saturating_add(HORIZON_MARGIN)
}

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

/// Deletes the rows processed before `before`, [`PRUNE_BATCH`] at a time (each batch its own
/// unit of work), until none is left or `stop` is cancelled. Returns how many were deleted.
pub async fn prune(
    db: &Db,
    before: time::OffsetDateTime,
    stop: &CancellationToken,
) -> Result<u64, WriteError<SqlError>> {
    let cutoff = crate::format_rfc3339(before);
    let mut deleted = 0u64;
    while !stop.is_cancelled() {
        let cutoff = cutoff.clone();
        let n = db
            .write(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "DELETE FROM inbox WHERE (handler, event_id) IN \
                         (SELECT handler, event_id FROM inbox WHERE processed_at < $1 LIMIT $2)",
                        args![&cutoff, PRUNE_BATCH],
                    )
                    .await
                })
            })
            .await?;
        deleted = deleted.saturating_add(n);
        if n < u64::try_from(PRUNE_BATCH).unwrap_or(u64::MAX) {
            break;
        }
        // Let the units that queued meanwhile have the writer first.
        tokio::task::yield_now().await;
    }
    Ok(deleted)
}

/// Prunes rows older than `horizon` every [`PRUNE_EVERY`] until `shutdown`.
pub(crate) async fn prune_in_background(db: Db, horizon: Duration, shutdown: CancellationToken) {
    let Ok(horizon) = time::Duration::try_from(horizon) else {
        tracing::warn!(?horizon, "inbox horizon out of range; the inbox is not pruned");
        return;
    };
    let start = tokio::time::Instant::now() + FIRST_PRUNE_AFTER;
    let mut tick = tokio::time::interval_at(start, PRUNE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(before) = time::OffsetDateTime::now_utc().checked_sub(horizon) else { continue };
        match prune(&db, before, &shutdown).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, ?horizon, "inbox pruned"),
            Err(e) => tracing::warn!(error = %e, "pruning the inbox failed; trying again later"),
        }
    }
}
