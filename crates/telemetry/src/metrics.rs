//! Prometheus metrics through the `metrics` facade.
//!
//! [`install`] installs one process-wide recorder (idempotent), so that when `orderflow up` runs
//! every service in one process, each service's `/metrics` serves the whole process; the
//! `service` label tells the services apart. Metric names are listed in [`names`] so that
//! dashboards, alerts and code agree.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Every metric name orderflow exports.
pub mod names {
    /// Counter: events published to JetStream (acknowledged), by `service`, `subject`.
    pub const MESSAGES_PUBLISHED: &str = "orderflow_messages_published_total";
    /// Counter: deliveries handed to a handler, by `service`, `subject`.
    pub const MESSAGES_CONSUMED: &str = "orderflow_messages_consumed_total";
    /// Counter: deliveries whose handling failed, by `service`, `subject`, `kind`
    /// (`transient` | `permanent` | `undecodable`).
    pub const MESSAGES_FAILED: &str = "orderflow_messages_failed_total";
    /// Counter: deliveries that were redeliveries (delivery count > 1), by `service`, `subject`.
    pub const MESSAGES_REDELIVERED: &str = "orderflow_messages_redelivered_total";
    /// Counter: messages dead-lettered, by `service`, `subject`, `reason`.
    pub const MESSAGES_DEAD_LETTERED: &str = "orderflow_messages_dead_lettered_total";
    /// Histogram: handler duration in seconds, by `service`, `subject`.
    pub const HANDLER_DURATION: &str = "orderflow_handler_duration_seconds";
    /// Gauge: unsent outbox rows, by `service`.
    pub const OUTBOX_BACKLOG: &str = "orderflow_outbox_backlog";
    /// Gauge: age in seconds of the oldest unsent outbox row (0 when empty), by `service`.
    pub const OUTBOX_OLDEST_AGE: &str = "orderflow_outbox_oldest_age_seconds";
    /// Gauge: messages not yet delivered to a consumer, by `service`, `consumer`.
    pub const CONSUMER_PENDING: &str = "orderflow_consumer_pending";
    /// Gauge: messages delivered but not yet acknowledged, by `service`, `consumer`.
    pub const CONSUMER_ACK_PENDING: &str = "orderflow_consumer_ack_pending";
    /// Gauge: bytes a JetStream stream holds, by `service` (the reporter), `stream`.
    pub const STREAM_BYTES: &str = "orderflow_stream_bytes";
    /// Gauge: the stream's byte limit (at it, new messages are refused), by `service`, `stream`.
    pub const STREAM_MAX_BYTES: &str = "orderflow_stream_max_bytes";
    /// Gauge: messages a JetStream stream holds, by `service`, `stream`.
    pub const STREAM_MESSAGES: &str = "orderflow_stream_messages";
    /// Gauge: circuit breaker state (0 closed, 1 open, 2 half-open), by `service`, `breaker`.
    pub const BREAKER_STATE: &str = "orderflow_breaker_state";
    /// Counter: circuit breaker transitions, by `service`, `breaker`, `to`.
    pub const BREAKER_TRANSITIONS: &str = "orderflow_breaker_transitions_total";
    /// Counter: HTTP requests, by `service`, `method`, `route`, `status`.
    pub const HTTP_REQUESTS: &str = "orderflow_http_requests_total";
    /// Histogram: HTTP request duration in seconds, by `service`, `method`, `route`.
    pub const HTTP_DURATION: &str = "orderflow_http_request_duration_seconds";
    /// Requests answered 503 at once because the service had too many running.
    pub const HTTP_SHED: &str = "orderflow_http_requests_shed_total";
    /// Requests answered 429 because their client was over its rate, by `service`.
    pub const HTTP_RATE_LIMITED: &str = "orderflow_http_requests_rate_limited_total";
    /// Counter: orders accepted (202), by `service`, `priority`.
    pub const ORDERS_ACCEPTED: &str = "orderflow_orders_accepted_total";
    /// Counter: orders that reached a terminal status, by `service`, `status`, `reason`.
    pub const ORDERS_TERMINAL: &str = "orderflow_orders_total";
    /// Counter: gateway-sim charges, by `service`, `status`.
    pub const GATEWAY_CHARGES: &str = "orderflow_gateway_charges_total";
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once) and returns the handle that renders it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let seconds =
                [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &seconds)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first (by an embedding program); the
            // handle still renders this recorder, which then simply stays empty.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

/// How often recorded histogram samples are folded into their buckets.
pub const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A recorder made with `build_recorder` keeps every histogram sample until the next render:
/// without a Prometheus scraping `/metrics`, memory grew with every request and every handled
/// event (found under load in `orderflow up`). A thread folds them into the buckets every
/// [`UPKEEP_EVERY`], scraped or not; a thread rather than a task, because the recorder may be
/// installed before (or without) a tokio runtime.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("metrics-upkeep".to_owned()).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        }
    });
    if let Err(e) = spawned {
        eprintln!(
            "metrics: could not start the upkeep thread ({e}); histograms are folded only when /metrics is scraped"
        );
    }
}

/// The Prometheus text of everything recorded in this process.
pub fn render() -> String {
    install().render()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    use names::*;
    describe_counter!(MESSAGES_PUBLISHED, "Events published to JetStream and acknowledged");
    describe_counter!(MESSAGES_CONSUMED, "Deliveries handed to a handler");
    describe_counter!(MESSAGES_FAILED, "Deliveries whose handling failed");
    describe_counter!(MESSAGES_REDELIVERED, "Deliveries that were redeliveries");
    describe_counter!(MESSAGES_DEAD_LETTERED, "Messages sent to the dead-letter queue");
    describe_histogram!(HANDLER_DURATION, metrics::Unit::Seconds, "Event handler duration");
    describe_gauge!(OUTBOX_BACKLOG, "Unsent outbox rows");
    describe_gauge!(OUTBOX_OLDEST_AGE, metrics::Unit::Seconds, "Age of the oldest unsent outbox row");
    describe_gauge!(CONSUMER_PENDING, "Messages not yet delivered to the consumer");
    describe_gauge!(CONSUMER_ACK_PENDING, "Messages delivered and not yet acknowledged");
    describe_gauge!(STREAM_BYTES, metrics::Unit::Bytes, "Bytes a JetStream stream holds");
    describe_gauge!(STREAM_MAX_BYTES, metrics::Unit::Bytes, "Byte limit of a JetStream stream");
    describe_gauge!(STREAM_MESSAGES, "Messages a JetStream stream holds");
    describe_gauge!(BREAKER_STATE, "Circuit breaker state: 0 closed, 1 open, 2 half-open");
    describe_counter!(BREAKER_TRANSITIONS, "Circuit breaker state changes");
    describe_counter!(HTTP_REQUESTS, "HTTP requests");
    describe_histogram!(HTTP_DURATION, metrics::Unit::Seconds, "HTTP request duration");
    describe_counter!(HTTP_SHED, "HTTP requests shed (503) because too many were running");
    describe_counter!(
        HTTP_RATE_LIMITED,
        "HTTP requests refused (429) because their client was over its rate"
    );
    describe_counter!(ORDERS_ACCEPTED, "Orders accepted with 202");
    describe_counter!(ORDERS_TERMINAL, "Orders that reached confirmed or cancelled");
    describe_counter!(GATEWAY_CHARGES, "Charges answered by the gateway simulator");
}
