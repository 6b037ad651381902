//! The live summary: while anyone watches, one task reads the summary once a second (whoever
//! changed the store: this instance, another one on the same database, a rebuild) and hands it to
//! every watcher of `GET /analytics/stream` through a
//! `watch` channel. A watcher always gets the newest summary and never a queue of old ones, so
//! a slow client holds at most one summary, whatever the rate of orders; the number of
//! watchers is bounded by a semaphore (`503` beyond it).

use std::sync::Arc;
use std::time::Duration;

use orderflow_platform::Db;
use time::OffsetDateTime;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::summary;

/// How often watchers get the summary.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// One published summary: its sequence number (the SSE event id) and its JSON.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Starts at 1 and grows by one per publication; 0 before the first and while nobody watches.
    pub seq: u64,
    /// The summary as JSON.
    pub json: Arc<str>,
}

/// What the stream route shares with the publishing task.
#[derive(Clone, Debug)]
pub struct Live {
    snapshots: watch::Receiver<Snapshot>,
    watchers: Arc<Semaphore>,
    shutdown: CancellationToken,
}

impl Live {
    /// The newest snapshot and a receiver for the next ones.
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.snapshots.clone()
    }

    /// A watcher's place, `None` when `max_watchers` are connected.
    pub fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.watchers.clone().try_acquire_owned().ok()
    }

    /// Cancelled when the service drains: every stream ends.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }
}

/// Starts the publishing task; it ends with `shutdown`.
pub fn start(db: Db, max_watchers: usize, shutdown: CancellationToken) -> Live {
    let (tx, rx) = watch::channel(Snapshot::default());
    let watchers = Arc::new(Semaphore::new(max_watchers));
    let nobody_watches = {
        let watchers = watchers.clone();
        move || watchers.available_permits() == max_watchers
    };
    tokio::spawn(publish(db, tx, nobody_watches, shutdown.clone()));
    Live { snapshots: rx, watchers, shutdown }
}

async fn publish(
    db: Db,
    tx: watch::Sender<Snapshot>,
    nobody_watches: impl Fn() -> bool,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut json: Arc<str> = Arc::from("");
    let mut seq = 0;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if nobody_watches() {
            // Nothing to read for; and the next watcher waits for a fresh summary (at most a
            // tick) rather than being handed the last one, however old.
            if !json.is_empty() {
                json = Arc::from("");
                tx.send_replace(Snapshot::default());
            }
            continue;
        }
        match summary::read(&db, OffsetDateTime::now_utc()).await.map(|s| serde_json::to_string(&s)) {
            Ok(Ok(text)) => json = Arc::from(text),
            Ok(Err(e)) => tracing::error!(error = %e, "encoding the summary"),
            Err(e) => tracing::warn!(error = %e, "reading the summary; watchers get the last one"),
        }
        if json.is_empty() {
            continue;
        }
        seq += 1;
        tx.send_replace(Snapshot { seq, json: json.clone() });
    }
}
