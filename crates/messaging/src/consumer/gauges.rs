//! The consumer's gauges: its pending and ack-pending counts, read from JetStream.

use std::time::Duration;

use async_nats::jetstream;
use orderflow_telemetry::metrics::names;
use tokio_util::sync::CancellationToken;

use crate::topology::ConsumerSpec;

/// Every few seconds: the consumer's pending and ack-pending counts from JetStream.
pub(super) async fn report_consumer_info(
    js: jetstream::Context,
    spec: ConsumerSpec,
    service: String,
    shutdown: CancellationToken,
) {
    let labels = [("service", service), ("consumer", spec.durable.clone())];
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(stream) = js.get_stream_no_info(&spec.stream).await else { continue };
        if let Ok(info) = stream.consumer_info(&spec.durable).await {
            metrics::gauge!(names::CONSUMER_PENDING, &labels).set(info.num_pending as f64);
            metrics::gauge!(names::CONSUMER_ACK_PENDING, &labels).set(info.num_ack_pending as f64);
        }
    }
}
