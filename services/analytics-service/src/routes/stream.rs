//! `GET /analytics/stream`: Server-Sent Events, one `summary` event a second.
//!
//! Each event is the whole summary, with its sequence number as the SSE id. A client that
//! reconnects with `Last-Event-ID` gets the next summary newer than the one it has (nothing in
//! between matters: every event replaces the one before). Watchers beyond the limit get `503`
//! with `Retry-After`, and every stream ends when the service drains.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use http::HeaderMap;
use orderflow_platform::http::problem::{Problem, ProblemType};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio_util::sync::CancellationToken;

use super::AppState;
use crate::live::Snapshot;

/// What a disconnected browser waits before it reconnects.
const RETRY: Duration = Duration::from_secs(1);

pub(super) async fn summaries(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(permit) = state.live.admit() else {
        return Problem::new(ProblemType::Unavailable, "too many summary watchers; retry later")
            .retry_after(5);
    };
    let last_seen =
        headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let watcher = Watcher {
        snapshots: state.live.subscribe(),
        shutdown: state.live.shutdown().clone(),
        last_seen,
        first: true,
        _permit: permit,
    };
    Sse::new(events(watcher)).into_response()
}

struct Watcher {
    snapshots: watch::Receiver<Snapshot>,
    shutdown: CancellationToken,
    last_seen: Option<u64>,
    first: bool,
    _permit: OwnedSemaphorePermit,
}

fn events(watcher: Watcher) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(watcher, |mut w| async move {
        loop {
            let current = w.snapshots.borrow_and_update().clone();
            if current.seq > 0 && w.last_seen != Some(current.seq) {
                w.last_seen = Some(current.seq);
                let mut event =
                    Event::default().event("summary").id(current.seq.to_string()).data(&*current.json);
                if std::mem::take(&mut w.first) {
                    event = event.retry(RETRY);
                }
                return Some((Ok(event), w));
            }
            tokio::select! {
                () = w.shutdown.cancelled() => return None,
                changed = w.snapshots.changed() => changed.ok()?,
            }
        }
    })
}
