//! Header names and the one place that reads and writes them on NATS messages.

use async_nats::HeaderMap;

/// JetStream's de-duplication header; orderflow sets it to the event id.
pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
/// Correlation id of the request that caused the event (same name as over HTTP).
pub const CORRELATION_ID: &str = "X-Correlation-ID";
/// W3C trace context.
pub(crate) const TRACEPARENT: &str = "traceparent";
/// CloudEvents structured mode content type.
pub(crate) const CONTENT_TYPE: &str = "Content-Type";
/// The value of [`CONTENT_TYPE`] for every orderflow event.
pub(crate) const CLOUDEVENTS_JSON: &str = "application/cloudevents+json; charset=utf-8";

/// Why the message was dead-lettered (`schema_invalid`, `malformed`, …).
pub const DLQ_REASON: &str = "Orderflow-Dlq-Reason";
/// The error text that dead-lettered it.
pub const DLQ_ERROR: &str = "Orderflow-Dlq-Error";
/// The subject it was published on.
pub const ORIGINAL_SUBJECT: &str = "Orderflow-Original-Subject";
/// Its sequence in the original stream.
pub const STREAM_SEQ: &str = "Orderflow-Stream-Seq";
/// The original stream.
pub const ORIGINAL_STREAM: &str = "Orderflow-Original-Stream";
/// The durable consumer that gave up on it.
pub const CONSUMER: &str = "Orderflow-Consumer";
/// How many times it had been delivered.
pub const DELIVERY_COUNT: &str = "Orderflow-Delivery-Count";
/// The original `Nats-Msg-Id`: the DLQ copy needs its own id (see [`crate::dlq`]).
pub const ORIGINAL_MSG_ID: &str = "Orderflow-Original-Msg-Id";
/// On a replayed message: the DLQ sequence it was replayed from.
pub const REPLAY_OF: &str = "Orderflow-Replay-Of";

/// The first value of `name`, if any and valid UTF-8.
pub fn get<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers?.get(name).map(|v| v.as_str())
}
