//! Admission control: `POST /orders` is refused with `503` + `Retry-After` while the saga is too
//! far behind, so overload is shed at the edge instead of piling up in JetStream (where every
//! waiting order's latency grows with the pile).
//!
//! Two signals, both cheap to read on the request path: the order database's writer queue, and
//! the saga's backlog — what the first step of the saga (inventory's `orders.created` consumers,
//! both lanes) has not yet acknowledged: pending plus ack-pending, polled from JetStream a few
//! times a second by [`watch_saga_backlog`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use orderflow_events::EventKind;
use orderflow_messaging::ConsumerSpec;
use tokio_util::sync::CancellationToken;

/// How often the saga's backlog is read from JetStream.
pub(crate) const POLL: Duration = Duration::from_millis(200);

/// The saga's backlog as last read (orders not yet taken up by inventory); cheap to clone.
#[derive(Clone, Debug, Default)]
pub(crate) struct SagaBacklog(Arc<AtomicU64>);

impl SagaBacklog {
    /// The last reading.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Reads the backlog of inventory's `orders.created` consumers every [`POLL`] until `shutdown`.
/// A consumer that does not exist yet counts as empty; a failed read keeps the last value.
pub(crate) async fn watch_saga_backlog(
    js: jetstream::Context,
    backlog: SagaBacklog,
    shutdown: CancellationToken,
) {
    let specs =
        [false, true].map(|express| ConsumerSpec::for_lane("inventory", EventKind::OrdersCreated, express));
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut total = 0u64;
        for spec in &specs {
            let Ok(stream) = js.get_stream_no_info(&spec.stream).await else { continue };
            if let Ok(info) = stream.consumer_info(&spec.durable).await {
                total += info.num_pending + info.num_ack_pending as u64;
            }
        }
        backlog.0.store(total, Ordering::Relaxed);
    }
}
