//! The CloudEvents 1.0 envelope, in structured-mode JSON.
//!
//! The envelope is the whole NATS message body: context attributes plus the
//! payload in `data`. Trace and correlation context is also carried here so a
//! message stays self-describing when it is replayed from the DLQ.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::de;
use crate::ids::{CorrelationId, EventId};
use crate::kinds::EventKind;
use crate::v1::Event;

/// The CloudEvents version every envelope declares.
pub(crate) const SPEC_VERSION: &str = "1.0";

/// The content type of `data`.
pub(crate) const DATA_CONTENT_TYPE: &str = "application/json";

/// A CloudEvents 1.0 envelope around an event payload `T`.
///
/// Build one with [`Envelope::new`]; read one with [`decode`](crate::decode()), which
/// validates it against the JSON Schema of its kind first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Envelope<T> {
    /// CloudEvents version, always `"1.0"`.
    pub(crate) specversion: String,
    /// Unique event id (UUIDv7); also the JetStream `Nats-Msg-Id`.
    pub id: EventId,
    /// CloudEvents type: `"orderflow."` + the base subject, e.g. `"orderflow.orders.created.v1"`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The producing service, e.g. `"orderflow/order-service"`.
    #[schemars(length(min = 1))]
    pub(crate) source: String,
    /// When the event happened (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub time: OffsetDateTime,
    /// The order the event is about (its id).
    #[schemars(extend("format" = "uuid"))]
    pub subject: String,
    /// Content type of `data`, always `"application/json"`.
    pub(crate) datacontenttype: String,
    /// Correlation id of the request that caused this event.
    pub correlationid: CorrelationId,
    /// W3C trace context of the producing span; always present, may be null.
    #[serde(deserialize_with = "de::nullable")]
    pub traceparent: Option<String>,
    /// The event payload.
    pub data: T,
}

impl<T: Event> Envelope<T> {
    /// Wraps `data` in a fresh envelope: a new UUIDv7 id, the type of `T`, the
    /// order id as subject, the current UTC time and no traceparent.
    #[must_use]
    pub fn new(source: &str, correlation_id: CorrelationId, data: T) -> Self {
        Self {
            specversion: SPEC_VERSION.to_owned(),
            id: EventId::new(),
            event_type: T::message_type().type_name().to_owned(),
            source: source.to_owned(),
            time: OffsetDateTime::now_utc(),
            subject: data.order_id().to_string(),
            datacontenttype: DATA_CONTENT_TYPE.to_owned(),
            correlationid: correlation_id,
            traceparent: None,
            data,
        }
    }

    /// The same event (id, time, context) with other `data`, typed as `U`: how one event is
    /// converted between the versions of its kind.
    #[must_use]
    pub fn with_data<U: Event>(&self, data: U) -> Envelope<U> {
        Envelope {
            specversion: self.specversion.clone(),
            id: self.id,
            event_type: U::message_type().type_name().to_owned(),
            source: self.source.clone(),
            time: self.time,
            subject: self.subject.clone(),
            datacontenttype: self.datacontenttype.clone(),
            correlationid: self.correlationid.clone(),
            traceparent: self.traceparent.clone(),
            data,
        }
    }

    /// [`Self::with_data`] by value, with `data` made from this envelope's.
    #[must_use]
    pub fn map_data<U: Event>(self, f: impl FnOnce(T) -> U) -> Envelope<U> {
        Envelope {
            specversion: self.specversion,
            id: self.id,
            event_type: U::message_type().type_name().to_owned(),
            source: self.source,
            time: self.time,
            subject: self.subject,
            datacontenttype: self.datacontenttype,
            correlationid: self.correlationid,
            traceparent: self.traceparent,
            data: f(self.data),
        }
    }

    /// Sets (or clears) the W3C `traceparent`.
    #[must_use]
    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
    }

    /// The structured-mode JSON body to publish.
    ///
    /// # Errors
    /// Only if serialization fails, which the types here never do in practice.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// The kind of this event (from `T`, not from the `type` string).
    #[must_use]
    pub fn kind(&self) -> EventKind {
        T::KIND
    }
}
