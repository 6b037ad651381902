//! The NATS header names every event carries besides its CloudEvents body. The messaging
//! crate sets and reads them; the AsyncAPI document describes them. One home for both.

/// JetStream's de-duplication header; orderflow sets it to the event id.
pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
/// Correlation id of the request that caused the event (same name as over HTTP).
pub const CORRELATION_ID: &str = "X-Correlation-ID";
/// W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// CloudEvents structured mode content type header.
pub const CONTENT_TYPE: &str = "Content-Type";
/// The value of [`CONTENT_TYPE`] for every orderflow event.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json; charset=utf-8";
