//! Publishing events to JetStream: message id, headers, pipelining and error classification.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, publish::PublishAck};
use bytes::Bytes;
use orderflow_events::{CorrelationId, Envelope, Event};

use crate::headers;

/// A new event that starts a causal chain (e.g. an order placed over HTTP), with the trace
/// context of a `"{subject} publish"` span under the current span.
pub fn originate<T: Event>(source: &str, correlation: CorrelationId, data: T) -> Envelope<T> {
    let traceparent = orderflow_telemetry::trace::publish_traceparent(T::KIND.subject(), None);
    Envelope::new(source, correlation, data).with_traceparent(traceparent)
}

/// An event caused by `cause`: the same correlation id, and the trace context of a
/// `"{subject} publish"` span under the current (process) span — or the cause's own context when
/// spans are not recorded, so the trace is never broken.
pub(crate) fn follow_up<C, T: Event>(source: &str, cause: &Envelope<C>, data: T) -> Envelope<T> {
    let traceparent =
        orderflow_telemetry::trace::publish_traceparent(T::KIND.subject(), cause.traceparent.clone());
    Envelope::new(source, cause.correlationid.clone(), data).with_traceparent(traceparent)
}

/// How many publishes are in flight before the publisher waits for their PubAcks (async-nats
/// blocks silently past its own `max_ack_inflight` of 5000).
pub(crate) const PIPELINE_WINDOW: usize = 1024;

/// A message ready to publish: what an outbox row stores.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingMessage {
    /// NATS subject (`orders.created.v1`, or its `.express` lane).
    pub subject: String,
    /// The event id, sent as `Nats-Msg-Id`.
    pub message_id: String,
    /// The CloudEvents JSON.
    pub payload: Bytes,
    /// Correlation id, sent as `X-Correlation-ID`.
    pub correlation_id: Option<String>,
    /// W3C trace context, sent as `traceparent`.
    pub traceparent: Option<String>,
}

impl OutgoingMessage {
    /// Serializes an envelope; `express` routes it to the kind's express-lane subject.
    pub fn from_envelope<T: Event>(envelope: &Envelope<T>, express: bool) -> Result<Self, serde_json::Error> {
        let kind = T::KIND;
        Ok(Self {
            subject: if express { kind.express_subject() } else { kind.subject() }.to_owned(),
            message_id: envelope.id.to_string(),
            payload: Bytes::from(envelope.to_json()?),
            correlation_id: Some(envelope.correlationid.as_str().to_owned()),
            traceparent: envelope.traceparent.clone(),
        })
    }

    /// The same message on the express lane (`true`) or the standard one.
    pub fn on_lane(mut self, express: bool) -> Self {
        let base =
            self.subject.strip_suffix(orderflow_events::subjects::EXPRESS_SUFFIX).unwrap_or(&self.subject);
        self.subject = if express {
            format!("{base}{}", orderflow_events::subjects::EXPRESS_SUFFIX)
        } else {
            base.to_owned()
        };
        self
    }

    /// The NATS headers orderflow puts on every event.
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(headers::NATS_MSG_ID, self.message_id.as_str());
        h.insert(headers::CONTENT_TYPE, headers::CLOUDEVENTS_JSON);
        if let Some(c) = &self.correlation_id {
            h.insert(headers::CORRELATION_ID, c.as_str());
        }
        if let Some(t) = &self.traceparent {
            h.insert(headers::TRACEPARENT, t.as_str());
        }
        h
    }
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
#[error("publishing to {subject}: {source}")]
pub struct PublishError {
    /// The subject.
    pub subject: String,
    /// The client's error.
    #[source]
    pub(crate) source: jetstream::context::PublishError,
}

impl PublishError {
    /// JetStream answered 409 "duplicate message id is in process" (error code 10158): another
    /// publisher (a second relay on the same outbox, or a sweep) is storing a message with the
    /// same `Nats-Msg-Id` at this very moment. Nothing is wrong; the message is being stored.
    pub fn is_duplicate_in_process(&self) -> bool {
        std::error::Error::source(&self.source)
            .and_then(|e| e.downcast_ref::<async_nats::jetstream::Error>())
            .is_some_and(|e| e.error_code() == async_nats::jetstream::ErrorCode(10158))
    }
}

/// Publishes to JetStream and waits for every PubAck.
#[derive(Clone, Debug)]
pub struct Publisher {
    js: jetstream::Context,
}

impl Publisher {
    /// A publisher on the given context.
    pub fn new(js: jetstream::Context) -> Self {
        Self { js }
    }

    /// Publishes one message and waits for its PubAck.
    pub async fn publish(&self, msg: &OutgoingMessage) -> Result<PublishAck, PublishError> {
        let err = |source| PublishError { subject: msg.subject.clone(), source };
        self.js
            .publish_with_headers(msg.subject.clone(), msg.headers(), msg.payload.clone())
            .await
            .map_err(err)?
            .await
            .map_err(err)
    }

    /// Publishes many messages pipelined: up to `PIPELINE_WINDOW` are sent before their
    /// PubAcks are awaited, in order. Returns one result per message, so a caller (the outbox
    /// relay) can mark exactly the acknowledged ones as sent.
    pub async fn publish_all(&self, msgs: &[OutgoingMessage]) -> Vec<Result<PublishAck, PublishError>> {
        let mut results = Vec::with_capacity(msgs.len());
        for window in msgs.chunks(PIPELINE_WINDOW) {
            let mut pending = Vec::with_capacity(window.len());
            for msg in window {
                let sent = self
                    .js
                    .publish_with_headers(msg.subject.clone(), msg.headers(), msg.payload.clone())
                    .await;
                pending.push(sent);
            }
            // Await the window's PubAcks together: each has its own timeout, and awaiting them
            // one by one would turn N lost acks into N sequential timeouts.
            let acks = pending.into_iter().zip(window).map(|(sent, msg)| async move {
                let err = |source| PublishError { subject: msg.subject.clone(), source };
                match sent {
                    Ok(ack) => ack.await.map_err(err),
                    Err(e) => Err(err(e)),
                }
            });
            results.extend(futures_util::future::join_all(acks).await);
        }
        results
    }

    /// The underlying JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use async_nats::jetstream::context::{PublishError as ClientError, PublishErrorKind};

    use super::PublishError;

    /// The error JetStream answers a publish with, as the client parses it.
    fn answered(json: &str) -> PublishError {
        let error: async_nats::jetstream::Error = serde_json::from_str(json).unwrap();
        PublishError {
            subject: "orders.created.v1".into(),
            source: ClientError::with_source(PublishErrorKind::Other, error),
        }
    }

    #[test]
    fn a_duplicate_id_being_stored_elsewhere_is_told_apart_from_real_failures() {
        let in_process = answered(
            r#"{"code": 409, "err_code": 10158, "description": "duplicate message id is in process"}"#,
        );
        let other = answered(r#"{"code": 503, "err_code": 10077, "description": "stream is offline"}"#);
        let timeout = PublishError {
            subject: "orders.created.v1".into(),
            source: ClientError::new(PublishErrorKind::TimedOut),
        };

        assert!(in_process.is_duplicate_in_process());
        assert!(!other.is_duplicate_in_process());
        assert!(!timeout.is_duplicate_in_process());
    }
}
