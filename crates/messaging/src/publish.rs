//! Publishing events to JetStream: message id, headers, pipelining and error classification.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::context::{PublishError as ClientError, PublishErrorKind};
use async_nats::jetstream::{self, publish::PublishAck};
use bytes::Bytes;
use orderflow_events::{CorrelationId, Envelope, Event, MessageType};
use orderflow_telemetry::trace::TraceContext;
use tokio_util::sync::CancellationToken;

use crate::connect::ConnectionMark;
use crate::headers;

/// A new event that starts a causal chain (e.g. an order placed over HTTP, whose request is
/// traced in `trace`), with the trace context of a `"{subject} publish"` span under the current
/// span — or `trace` itself when spans are not recorded.
pub fn originate<T: Event>(
    source: &str,
    correlation: CorrelationId,
    trace: &TraceContext,
    data: T,
) -> Envelope<T> {
    let traceparent = orderflow_telemetry::trace::publish_traceparent(T::KIND.subject(), trace);
    Envelope::new(source, correlation, data).with_traceparent(Some(traceparent))
}

/// An event caused by `cause`, handled in `trace`: the same correlation id, and the trace context
/// of a `"{subject} publish"` span under the current (process) span — or `trace` itself when
/// spans are not recorded, so the trace is never broken.
pub(crate) fn follow_up<C, T: Event>(
    source: &str,
    cause: &Envelope<C>,
    trace: &TraceContext,
    data: T,
) -> Envelope<T> {
    let traceparent = orderflow_telemetry::trace::publish_traceparent(T::KIND.subject(), trace);
    Envelope::new(source, cause.correlationid.clone(), data).with_traceparent(Some(traceparent))
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
    /// Serializes an envelope, in `T`'s version only; `express` routes it to the express lane's
    /// subject. A service publishes through [`EventVersions::messages`](crate::EventVersions::messages),
    /// which makes one message per version it publishes.
    pub fn from_envelope<T: Event>(envelope: &Envelope<T>, express: bool) -> Result<Self, serde_json::Error> {
        Ok(Self::from_payload(T::message_type(), envelope, Bytes::from(envelope.to_json()?), express))
    }

    /// The message of `envelope` serialized as `message` (one of its kind's versions) into
    /// `payload`.
    pub(crate) fn from_payload<T>(
        message: MessageType,
        envelope: &Envelope<T>,
        payload: Bytes,
        express: bool,
    ) -> Self {
        Self {
            subject: message.lane_subject(express).to_owned(),
            message_id: message.message_id(&envelope.id.to_string()),
            payload,
            correlation_id: Some(envelope.correlationid.as_str().to_owned()),
            traceparent: envelope.traceparent.clone(),
        }
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

    /// The message is too large ever to be stored: over the server's `max_payload` (the client
    /// refuses it before sending anything, `MaxPayloadExceeded`, naming both sizes), or over the
    /// stream's `max_msg_size` (JetStream answers error code 10054). Sending it again cannot
    /// help.
    pub fn is_too_large(&self) -> bool {
        self.kind() == PublishErrorKind::MaxPayloadExceeded
            || std::error::Error::source(&self.source)
                .and_then(|e| e.downcast_ref::<async_nats::jetstream::Error>())
                .is_some_and(|e| e.error_code() == async_nats::jetstream::ErrorCode(10054))
    }

    /// What kind of failure the client reports: `BrokenPipe` for a PubAck that was due on a
    /// connection that dropped, `TimedOut` for one that did not come within [`ACK_TIMEOUT`],
    /// `StreamNotFound` for "no responders".
    pub fn kind(&self) -> PublishErrorKind {
        self.source.kind()
    }
}

/// How long a publish waits for its PubAck before it counts as failed (and is sent again by
/// the outbox relay: `Nats-Msg-Id` makes the copies one). A healthy cluster acknowledges in
/// milliseconds, even with `sync_interval: always` and a pipeline of 1,024. A PubAck lost with
/// its NATS node no longer waits for this (see [`Publisher`]); what does is a node that hangs.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a server has to answer the liveness probe sent after a PubAck timed out.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Publishes to JetStream and waits for every PubAck.
///
/// A PubAck that cannot come any more fails at once instead of waiting out its timeout: when
/// the connection it was sent on drops (a NATS node killed), every publish still waiting on it
/// fails with a broken pipe, and the caller can send again over the new connection. When a
/// PubAck times out while the connection looks up (a frozen node keeps its TCP connection open),
/// the server is probed with a request it answers itself; if it stays silent, the client is told
/// to reconnect, which [`crate::connect()`] steers to another node of the cluster.
///
/// A node that answers "no responders" for the streams' subjects (one that has just restarted
/// and does not yet know where the streams live) is left too: after [`NO_RESPONDERS_GRACE`] of
/// nothing else on the same connection, the client reconnects, to another node.
#[derive(Clone, Debug)]
pub struct Publisher {
    js: jetstream::Context,
    /// Since when, and on which connection, publishes have found no responders.
    no_responders: Arc<Mutex<Option<(ConnectionMark, Instant)>>>,
}

/// How long publishes may find no responders on one connection of a cluster before the client
/// moves to another node.
pub const NO_RESPONDERS_GRACE: Duration = Duration::from_secs(2);

impl Publisher {
    /// A publisher on the given context; its PubAcks time out after [`ACK_TIMEOUT`].
    pub fn new(mut js: jetstream::Context) -> Self {
        js.set_timeout(ACK_TIMEOUT);
        Self { js, no_responders: Arc::default() }
    }

    /// Publishes one message and waits for its PubAck.
    pub async fn publish(&self, msg: &OutgoingMessage) -> Result<PublishAck, PublishError> {
        let mut results = self.publish_all(std::slice::from_ref(msg)).await;
        results.pop().unwrap_or_else(|| {
            Err(PublishError {
                subject: msg.subject.clone(),
                source: ClientError::new(PublishErrorKind::Other),
            })
        })
    }

    /// Publishes many messages pipelined: up to `PIPELINE_WINDOW` are sent before their
    /// PubAcks are awaited, in order. Returns one result per message, so a caller (the outbox
    /// relay) can mark exactly the acknowledged ones as sent.
    pub async fn publish_all(&self, msgs: &[OutgoingMessage]) -> Vec<Result<PublishAck, PublishError>> {
        let client = self.js.client();
        let mut results = Vec::with_capacity(msgs.len());
        for window in msgs.chunks(PIPELINE_WINDOW) {
            let connection = ConnectionMark::of(&client);
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
            let lost = CancellationToken::new();
            let acks = pending.into_iter().zip(window).map(|(sent, msg)| {
                let lost = &lost;
                async move {
                    let err = |source| PublishError { subject: msg.subject.clone(), source };
                    match sent {
                        Ok(ack) => tokio::select! {
                            biased;
                            acked = ack => acked.map_err(err),
                            () = lost.cancelled() => Err(err(ClientError::new(PublishErrorKind::BrokenPipe))),
                        },
                        Err(e) => Err(err(e)),
                    }
                }
            });
            let all = futures_util::future::join_all(acks);
            tokio::pin!(all);
            let window_results = tokio::select! {
                done = &mut all => done,
                () = connection.lost(&client) => {
                    tracing::warn!(
                        in_flight = window.len(),
                        "NATS connection lost while PubAcks were due; failing them to publish again"
                    );
                    lost.cancel();
                    all.await
                }
            };
            let failed = |kind| window_results.iter().any(|r| matches!(r, Err(e) if e.kind() == kind));
            let timed_out = failed(PublishErrorKind::TimedOut);
            // What async-nats reports for a PubAck of "no responders".
            let no_responders = failed(PublishErrorKind::StreamNotFound);
            results.extend(window_results);
            if timed_out {
                probe_server(&client).await;
            }
            self.route_around_no_responders(&client, connection, no_responders).await;
        }
        results
    }

    /// Reconnects (to another node, see [`crate::connect()`]) once publishes have found no
    /// responders on the same connection for [`NO_RESPONDERS_GRACE`] — only when the client knows
    /// more than one server: with a single one there is nowhere else to go.
    async fn route_around_no_responders(
        &self,
        client: &async_nats::Client,
        connection: ConnectionMark,
        no_responders: bool,
    ) {
        let leave = {
            let mut since = self.no_responders.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match (*since, no_responders) {
                (_, false) => {
                    *since = None;
                    false
                }
                (Some((mark, at)), true) if mark == connection => {
                    let leave = at.elapsed() >= NO_RESPONDERS_GRACE;
                    if leave {
                        *since = None;
                    }
                    leave
                }
                (_, true) => {
                    *since = Some((connection, Instant::now()));
                    false
                }
            }
        };
        if leave && client.server_pool().await.is_ok_and(|pool| pool.len() > 1) {
            tracing::warn!(
                server = %client.server_info().server_name,
                grace = ?NO_RESPONDERS_GRACE,
                "this NATS node finds no responders for the streams; moving to another node"
            );
            if let Err(e) = client.force_reconnect().await {
                tracing::warn!(error = %e, "asking the NATS client to reconnect failed");
            }
        }
    }

    /// The underlying JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }
}

/// After a PubAck timed out on a connection that still looks up: asks the server something it
/// answers by itself (a request nobody serves gets "no responders" from the server at once).
/// Silence means a hung node holding the connection open (it would take two missed pings, up
/// to 30 s, for the client to notice), so the client reconnects now.
async fn probe_server(client: &async_nats::Client) {
    if client.connection_state() != async_nats::connection::State::Connected {
        // Reconnecting already.
        return;
    }
    let subject = format!("_ORDERFLOW.PROBE.{:016x}", fastrand::u64(..));
    if tokio::time::timeout(PROBE_TIMEOUT, client.request(subject, Bytes::new())).await.is_err() {
        tracing::warn!(
            server = %client.server_info().server_name,
            "NATS server silent after a PubAck timed out; reconnecting to another node"
        );
        if let Err(e) = client.force_reconnect().await {
            tracing::warn!(error = %e, "asking the NATS client to reconnect failed");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::{ClientError, PublishError, PublishErrorKind};

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
