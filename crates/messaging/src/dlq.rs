//! The dead-letter queue: what a dead letter looks like and how it is published.
//!
//! A dead letter is the original payload on `dlq.<original subject>` with the original headers,
//! plus `Orderflow-Dlq-Reason`, `-Error`, `Orderflow-Original-Subject`, `-Stream-Seq`,
//! `-Consumer` and `-Delivery-Count`. One header is changed on purpose: `Nats-Msg-Id` becomes
//! `<consumer>:<stream>:<seq>` (the original moves to `Orderflow-Original-Msg-Id`). Keeping the
//! event id would make JetStream drop the second of two consumers' dead letters for the same
//! event inside the duplicate window; the new id still makes a retried dead-lettering of the same
//! delivery a no-op.

use std::fmt;
use std::str::FromStr;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, publish::PublishAck};
use bytes::Bytes;

use crate::headers;
use crate::publish::PublishError;

/// The subject prefix of the DLQ stream.
pub(crate) const DLQ_PREFIX: &str = "dlq.";
/// Longest `Orderflow-Dlq-Error` value kept.
const MAX_ERROR_LEN: usize = 1024;

/// Why a message was dead-lettered (the `Orderflow-Dlq-Reason` header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DlqReason {
    /// Valid JSON that does not match the event's schema.
    SchemaInvalid,
    /// Not a JSON object at all.
    Malformed,
    /// An event type or version nobody here understands.
    UnknownType,
    /// The handler said it can never succeed.
    PermanentError,
    /// It failed on its last allowed delivery.
    MaxDeliveries,
}

impl DlqReason {
    /// Every reason.
    pub const ALL: [DlqReason; 5] =
        [Self::SchemaInvalid, Self::Malformed, Self::UnknownType, Self::PermanentError, Self::MaxDeliveries];

    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SchemaInvalid => "schema_invalid",
            Self::Malformed => "malformed",
            Self::UnknownType => "unknown_type",
            Self::PermanentError => "permanent_error",
            Self::MaxDeliveries => "max_deliveries",
        }
    }
}

impl fmt::Display for DlqReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown reason string.
#[derive(Debug, thiserror::Error)]
#[error("unknown DLQ reason {0:?}")]
pub struct UnknownReason(pub String);

impl FromStr for DlqReason {
    type Err = UnknownReason;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownReason(s.to_owned()))
    }
}

/// Everything needed to dead-letter one delivery.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// Why.
    pub reason: DlqReason,
    /// The error text (truncated, one line).
    pub error: String,
    /// The subject the message was published on.
    pub original_subject: String,
    /// The stream it lives in.
    pub stream: String,
    /// Its stream sequence.
    pub stream_seq: u64,
    /// The consumer that gave up.
    pub consumer: String,
    /// Deliveries so far.
    pub delivered: i64,
    /// Original headers.
    pub headers: Option<HeaderMap>,
    /// Original payload, unchanged.
    pub payload: Bytes,
}

impl DeadLetter {
    /// `dlq.` + the original subject.
    pub(crate) fn subject(&self) -> String {
        format!("{DLQ_PREFIX}{}", self.original_subject)
    }

    /// The DLQ message id: one per (consumer, stream, sequence).
    pub(crate) fn message_id(&self) -> String {
        format!("{}:{}:{}", self.consumer, self.stream, self.stream_seq)
    }

    /// The headers of the dead letter.
    pub(crate) fn dlq_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(orig) = &self.headers {
            for (name, values) in orig.iter() {
                let name: &str = name.as_ref();
                if name.eq_ignore_ascii_case(headers::NATS_MSG_ID) || name.starts_with("Nats-Expected") {
                    continue;
                }
                for v in values {
                    h.append(name, v.as_str());
                }
            }
            if let Some(id) = orig.get(headers::NATS_MSG_ID) {
                h.insert(headers::ORIGINAL_MSG_ID, id.as_str());
            }
        }
        h.insert(headers::NATS_MSG_ID, self.message_id().as_str());
        h.insert(headers::DLQ_REASON, self.reason.as_str());
        h.insert(headers::DLQ_ERROR, one_line(&self.error).as_str());
        h.insert(headers::ORIGINAL_SUBJECT, self.original_subject.as_str());
        h.insert(headers::ORIGINAL_STREAM, self.stream.as_str());
        h.insert(headers::STREAM_SEQ, self.stream_seq.to_string().as_str());
        h.insert(headers::CONSUMER, self.consumer.as_str());
        h.insert(headers::DELIVERY_COUNT, self.delivered.to_string().as_str());
        h
    }

    /// Publishes the dead letter and waits for the DLQ stream's PubAck.
    pub async fn publish(&self, js: &jetstream::Context) -> Result<PublishAck, PublishError> {
        let subject = self.subject();
        let err = |source| PublishError { subject: subject.clone(), source };
        js.publish_with_headers(subject.clone(), self.dlq_headers(), self.payload.clone())
            .await
            .map_err(err)?
            .await
            .map_err(err)
    }
}

/// Header values are single lines; errors can be long and multi-line.
fn one_line(s: &str) -> String {
    let mut out: String =
        s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_ERROR_LEN).collect();
    if s.chars().count() > MAX_ERROR_LEN {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_through_their_header_values() {
        for r in DlqReason::ALL {
            assert_eq!(r.as_str().parse::<DlqReason>().ok(), Some(r));
        }
        assert!("nope".parse::<DlqReason>().is_err());
    }

    #[test]
    fn error_text_becomes_one_bounded_line() {
        assert_eq!(one_line("a\nb\r\tc"), "a b  c");
        assert_eq!(one_line(&"x".repeat(5000)).chars().count(), MAX_ERROR_LEN + 1);
    }
}
