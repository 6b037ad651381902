//! Distributed tracing: W3C `traceparent` across HTTP and NATS hops, OpenTelemetry export.
//!
//! This is the one module that reads and writes trace context. Spans are ordinary `tracing`
//! spans; when an OpenTelemetry layer is installed (OTLP export because
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, or a test's in-memory exporter) they get trace and span
//! ids, [`set_parent`] continues the caller's trace and [`publish_traceparent`] starts a
//! `"{subject} publish"` span whose context travels with the event. Without such a layer nothing
//! is recorded or exported, and the incoming `traceparent` is passed through unchanged, so a
//! trace started upstream is not broken by a hop that does not export.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Name of the header on HTTP requests and NATS messages.
pub const TRACEPARENT: &str = "traceparent";

/// The W3C `traceparent` of `span`, when it has a valid OpenTelemetry context.
pub(crate) fn traceparent(span: &Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the remote span described by `traceparent` (ignored when absent or
/// malformed, or when no OpenTelemetry layer is installed).
pub fn set_parent(span: &Span, traceparent: Option<&str>) {
    let Some(tp) = traceparent else { return };
    let carrier: HashMap<String, String> = HashMap::from([(TRACEPARENT.to_owned(), tp.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The trace context to send with an event published on `subject` from the current span: a new
/// `"{subject} publish"` producer span's `traceparent`, or `fallback` (the incoming one) when
/// spans are not being recorded.
pub fn publish_traceparent(subject: &str, fallback: Option<String>) -> Option<String> {
    let span = tracing::info_span!(
        "publish",
        otel.name = %format_args!("{subject} publish"),
        otel.kind = "producer",
        messaging.system = "nats",
        messaging.operation.type = "publish",
        messaging.destination.name = %subject,
    );
    traceparent(&span).or(fallback)
}
