//! Rebuilding the read model from the streams: every event stored in ORDERS, INVENTORY and
//! PAYMENTS, from the first, folded through the same `fold::fold_event` as the live handlers and
//! with the same inbox keys. Into a fresh store it gives the state the live service has once
//! it is quiet; into the live store it changes nothing (every event is already in the inbox),
//! so it is safe to run twice.
//!
//! It reads with ordered consumers (ephemeral, no acks): the durable consumers of the running
//! service are not touched. Events it cannot decode are skipped and counted: the live service
//! dead-letters those and does not fold them either.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use orderflow_events::v2::{InventoryRejected, OrderCancelled, OrderCreated};
use orderflow_events::{
    EventKind, InventoryReleased, InventoryReserved, OrderConfirmed, PaymentCompleted, PaymentFailed,
    Version, decode_as,
};
use orderflow_platform::{Db, WriteError};
use serde::Serialize;

use crate::fold::{self, Foldable};

/// The streams the read model is folded from.
pub const STREAMS: [&str; 3] = ["ORDERS", "INVENTORY", "PAYMENTS"];

/// Longest wait for the next message of a stream before the replay gives up on it.
const IDLE: Duration = Duration::from_secs(30);

/// Folds waiting on the writer at once.
const IN_FLIGHT: usize = 256;

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Replayed {
    /// Messages read.
    pub read: u64,
    /// Events that changed the store.
    pub folded: u64,
    /// Events the store had already folded (duplicates, or a store already live).
    pub duplicates: u64,
    /// Messages that are not an event the read model folds (another version, bad schema).
    pub skipped: u64,
}

/// Folds every event stored now in the three streams into `db`.
///
/// # Errors
/// A stream could not be read, or the database failed.
pub async fn replay(js: &jetstream::Context, db: &Db) -> anyhow::Result<Replayed> {
    let mut replayed = Replayed::default();
    for name in STREAMS {
        replay_stream(js, db, name, &mut replayed)
            .await
            .with_context(|| format!("replaying the stream {name}"))?;
    }
    tracing::info!(?replayed, "read model rebuilt from the streams");
    Ok(replayed)
}

async fn replay_stream(
    js: &jetstream::Context,
    db: &Db,
    name: &str,
    replayed: &mut Replayed,
) -> anyhow::Result<()> {
    let mut stream = js.get_stream(name).await?;
    let state = stream.info().await?.state.clone();
    if state.messages == 0 {
        return Ok(());
    }
    // The replay ends at the last message stored now, or when none is left for the consumer
    // (the last one may have been deleted since, or never been there after a purge).
    let last = state.last_sequence;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    // Up to IN_FLIGHT folds wait on the writer at once, so it commits them in groups; the fold
    // is commutative, so their order does not matter.
    let mut folding = FuturesUnordered::new();
    let mut reached = false;
    while !reached || !folding.is_empty() {
        tokio::select! {
            Some(result) = folding.next(), if !folding.is_empty() => {
                match result? {
                    Some(true) => replayed.folded += 1,
                    Some(false) => replayed.duplicates += 1,
                    None => replayed.skipped += 1,
                }
            }
            next = tokio::time::timeout(IDLE, messages.next()), if !reached && folding.len() < IN_FLIGHT => {
                let next = next.with_context(|| format!("no message for {IDLE:?} before sequence {last}"))?;
                let Some(message) = next else { anyhow::bail!("the stream ended before sequence {last}") };
                let message = message?;
                let info = message.info().map_err(|e| anyhow::anyhow!("{e}"))?;
                replayed.read += 1;
                reached = info.stream_sequence >= last || info.pending == 0;
                let db = db.clone();
                folding.push(async move { fold_message(&db, &message.subject, &message.payload).await });
            }
        }
    }
    Ok(())
}

/// Folds one stored message: `Some(true)` when it changed the store, `Some(false)` for an event
/// folded before, `None` for a message the read model does not fold.
async fn fold_message(db: &Db, subject: &str, payload: &[u8]) -> anyhow::Result<Option<bool>> {
    let Some(kind) = EventKind::from_subject(subject) else { return Ok(None) };
    match kind {
        EventKind::OrdersCreated => fold_one::<OrderCreated>(db, payload).await,
        EventKind::OrdersConfirmed => fold_one::<OrderConfirmed>(db, payload).await,
        EventKind::OrdersCancelled => fold_one::<OrderCancelled>(db, payload).await,
        EventKind::InventoryReserved => fold_one::<InventoryReserved>(db, payload).await,
        EventKind::InventoryRejected => fold_one::<InventoryRejected>(db, payload).await,
        EventKind::InventoryReleased => fold_one::<InventoryReleased>(db, payload).await,
        EventKind::PaymentsCompleted => fold_one::<PaymentCompleted>(db, payload).await,
        EventKind::PaymentsFailed => fold_one::<PaymentFailed>(db, payload).await,
    }
}

async fn fold_one<T: Foldable>(db: &Db, payload: &[u8]) -> anyhow::Result<Option<bool>> {
    // Both versions of a dual-published event share its id: the second folds as a duplicate.
    let Ok(envelope) = decode_as::<T>(payload, &Version::ALL) else { return Ok(None) };
    Ok(Some(fold::fold_event(db, &envelope).await?))
}

/// Empties the read model and forgets which events it folded (its inbox rows), so that a
/// [`replay`] into it starts from nothing. Only with the service stopped: a running service
/// would keep folding into the store meanwhile.
///
/// # Errors
/// The database failed.
pub async fn reset(db: &Db) -> Result<(), orderflow_platform::SqlError> {
    db.write(|tx| {
        Box::pin(async move {
            for table in crate::audit::TABLES.map(|(table, _)| table) {
                tx.execute(&format!("DELETE FROM {table}"), &[]).await?;
            }
            for kind in EventKind::ALL {
                let key = fold::inbox_key(kind);
                tx.execute("DELETE FROM inbox WHERE handler = $1", orderflow_platform::args![key.as_str()])
                    .await?;
            }
            Ok(())
        })
    })
    .await
    .map_err(WriteError::into_unit_error)
}
