//! How full each of orderflow's streams is, as gauges: `orderflow_stream_bytes`,
//! `orderflow_stream_max_bytes` and `orderflow_stream_messages`, by `stream`.
//!
//! Every stream is bounded and refuses new messages at its byte limit ([`crate::topology`]):
//! nothing is lost then, but the saga stops, so the `OrderflowStreamNearlyFull` alert fires at
//! 80 %. Every service reports every stream (the DLQ has no consumer to report it otherwise);
//! the alert takes the maximum over the reporters. Reading a stream's info is one small JetStream
//! API request, and it is done every [`EVERY`].

use std::time::Duration;

use async_nats::jetstream;
use orderflow_telemetry::metrics::names;
use tokio_util::sync::CancellationToken;

use crate::topology::Topology;

/// How often the streams are read: well below the alert's `for`, far from a load on the server.
pub const EVERY: Duration = Duration::from_secs(15);

/// Reports the fill of every stream of [`Topology::orderflow`] until `shutdown`.
pub async fn report(js: jetstream::Context, service: &'static str, shutdown: CancellationToken) {
    let streams: Vec<String> = Topology::orderflow(1).streams.into_iter().map(|s| s.name).collect();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for name in &streams {
            let info = match js.get_stream_no_info(name).await {
                Ok(stream) => stream.get_info().await,
                Err(e) => {
                    tracing::debug!(stream = %name, error = %e, "reading the stream's fill failed");
                    continue;
                }
            };
            match info {
                Ok(info) => {
                    let labels = [("service", service.to_owned()), ("stream", name.clone())];
                    metrics::gauge!(names::STREAM_BYTES, &labels).set(info.state.bytes as f64);
                    metrics::gauge!(names::STREAM_MESSAGES, &labels).set(info.state.messages as f64);
                    metrics::gauge!(names::STREAM_MAX_BYTES, &labels).set(info.config.max_bytes as f64);
                }
                Err(e) => tracing::debug!(stream = %name, error = %e, "reading the stream's fill failed"),
            }
        }
    }
}
