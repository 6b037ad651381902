//! Header names and the one place that reads and writes them on NATS messages.

use async_nats::HeaderMap;

// The event headers are named in the events crate, which also describes them in the AsyncAPI
// document: one home for both.
pub(crate) use orderflow_events::headers::{CLOUDEVENTS_JSON, CONTENT_TYPE, TRACEPARENT};
pub use orderflow_events::headers::{CORRELATION_ID, NATS_MSG_ID};

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
