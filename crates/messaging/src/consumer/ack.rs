//! The ack policy: how one delivery is decoded, handed to its handler (kept alive by progress
//! acks, bounded by `handler_timeout`), and answered — ack, nak with the schedule's delay, or
//! dead-letter and term.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures_util::FutureExt;
use orderflow_events::Versioned;
use orderflow_telemetry::metrics::names;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::{Delivery, Handler, HandlerError, RuntimeConfig};
use crate::dlq::{DeadLetter, DlqReason};
use crate::headers;
use crate::topology::ConsumerSpec;

pub(super) struct Shared<H> {
    pub(super) js: jetstream::Context,
    pub(super) spec: ConsumerSpec,
    pub(super) config: RuntimeConfig,
    pub(super) handler: H,
    /// The `service` label of this runtime's metrics (`inventory-service`).
    pub(super) service: String,
}

/// How one delivery ended.
enum Outcome {
    Ack,
    Nak(Duration),
    DeadLetter(DlqReason, String),
}

impl<H> Shared<H> {
    pub(super) async fn process<T: Versioned>(&self, msg: jetstream::Message, _slot: OwnedSemaphorePermit)
    where
        H: Handler<T>,
    {
        let (stream, stream_seq, delivered) = match msg.info() {
            Ok(i) => (i.stream.to_owned(), i.stream_sequence, i.delivered),
            Err(e) => {
                tracing::error!(error = %e, subject = %msg.subject, "message without JetStream metadata; ignoring");
                return;
            }
        };
        let subject = msg.subject.to_string();
        let outcome = match orderflow_events::decode_as::<T>(&msg.payload, self.spec.accepted()) {
            Err(e) => {
                self.count(names::MESSAGES_FAILED, &subject, Some(("kind", "undecodable")));
                let reason = e.kind().as_str().parse().unwrap_or(DlqReason::SchemaInvalid);
                Outcome::DeadLetter(reason, e.to_string())
            }
            Ok(envelope) => {
                let parent = headers::get(msg.headers.as_ref(), headers::TRACEPARENT)
                    .or(envelope.traceparent.as_deref());
                let ingress = orderflow_telemetry::trace::Ingress::new(parent);
                let span = tracing::info_span!(
                    "process",
                    otel.name = %format_args!("{subject} process"),
                    otel.kind = "consumer",
                    messaging.system = "nats",
                    messaging.operation.type = "process",
                    messaging.destination.name = %subject,
                    messaging.consumer.group.name = %self.spec.durable,
                    service = %self.service,
                    correlation_id = %envelope.correlationid.as_str(),
                    trace_id = %ingress.trace_id(),
                    order_id = %envelope.subject,
                    event_id = %envelope.id,
                    stream_seq,
                    delivered,
                );
                let trace = ingress.attach(&span);
                let delivery = Delivery {
                    envelope,
                    subject: subject.clone(),
                    headers: msg.headers.clone(),
                    delivered,
                    trace,
                    versions: self.config.versions.clone(),
                };
                self.run_handler(&msg, delivery).instrument(span).await
            }
        };
        let outcome = match outcome {
            Outcome::DeadLetter(reason, error) => {
                let letter = DeadLetter {
                    reason,
                    error,
                    original_subject: subject,
                    stream,
                    stream_seq,
                    consumer: self.spec.durable.clone(),
                    delivered,
                    headers: msg.headers.clone(),
                    payload: msg.payload.clone(),
                };
                match letter.publish(&self.js).await {
                    Ok(_) => {
                        tracing::warn!(reason = %letter.reason, error = %letter.error, stream_seq, "dead-lettered");
                        self.count(
                            names::MESSAGES_DEAD_LETTERED,
                            &letter.original_subject,
                            Some(("reason", letter.reason.as_str())),
                        );
                        Outcome::Ack
                    }
                    Err(e) => {
                        tracing::error!(error = %e, stream_seq, "dead-lettering failed; will retry");
                        Outcome::Nak(self.spec.schedule.delay_after(delivered))
                    }
                }
                .map_dead_lettered()
            }
            other => other,
        };
        let kind = match outcome {
            Outcome::Ack => AckKind::Ack,
            Outcome::Nak(delay) => AckKind::Nak(Some(delay)),
            Outcome::DeadLetter(..) => AckKind::Term,
        };
        if let Err(e) = msg.ack_with(kind).await {
            tracing::warn!(error = %e, stream_seq, "sending the ack failed; the message will be redelivered");
        }
    }

    async fn run_handler<T: Versioned>(&self, msg: &jetstream::Message, delivery: Delivery<T>) -> Outcome
    where
        H: Handler<T>,
    {
        let delivered = delivery.delivered;
        let subject = delivery.subject.clone();
        self.count(names::MESSAGES_CONSUMED, &subject, None);
        if delivered > 1 {
            self.count(names::MESSAGES_REDELIVERED, &subject, None);
        }
        let started = std::time::Instant::now();
        let work = AssertUnwindSafe(self.handler.handle(delivery)).catch_unwind();
        tokio::pin!(work);
        let deadline = tokio::time::sleep(self.config.handler_timeout);
        tokio::pin!(deadline);
        let beat = (self.spec.schedule.ack_wait() / 2).max(Duration::from_millis(50));
        let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
        let result = loop {
            tokio::select! {
                r = &mut work => break match r {
                    Ok(r) => r,
                    Err(_) => Err(HandlerError::transient("handler panicked")),
                },
                _ = progress.tick() => {
                    let _ = msg.ack_with(AckKind::Progress).await;
                }
                _ = &mut deadline => {
                    break Err(HandlerError::transient(format!(
                        "handler did not finish within {:?}", self.config.handler_timeout
                    )));
                }
            }
        };
        metrics::histogram!(
            names::HANDLER_DURATION,
            "service" => self.service.clone(),
            "subject" => subject.clone()
        )
        .record(started.elapsed().as_secs_f64());
        match &result {
            Ok(()) => {}
            Err(HandlerError::Permanent(_)) => {
                self.count(names::MESSAGES_FAILED, &subject, Some(("kind", "permanent")))
            }
            Err(HandlerError::Transient(_)) => {
                self.count(names::MESSAGES_FAILED, &subject, Some(("kind", "transient")))
            }
        }
        match result {
            Ok(()) => Outcome::Ack,
            Err(HandlerError::Permanent(e)) => Outcome::DeadLetter(DlqReason::PermanentError, e.to_string()),
            Err(HandlerError::Transient(e)) if delivered >= self.spec.max_deliver => {
                Outcome::DeadLetter(DlqReason::MaxDeliveries, e.to_string())
            }
            Err(HandlerError::Transient(e)) => {
                let delay = self.spec.schedule.delay_after(delivered);
                tracing::info!(error = %e, retry_in = ?delay, "transient failure; redelivering later");
                Outcome::Nak(delay)
            }
        }
    }
}

impl<H> Shared<H> {
    fn count(&self, name: &'static str, subject: &str, extra: Option<(&'static str, &'static str)>) {
        let mut labels = vec![("service", self.service.clone()), ("subject", subject.to_owned())];
        if let Some((k, v)) = extra {
            labels.push((k, v.to_owned()));
        }
        metrics::counter!(name, &labels).increment(1);
    }
}

impl Outcome {
    /// After a successful dead-lettering the original is termed, not acked.
    fn map_dead_lettered(self) -> Self {
        match self {
            Outcome::Ack => Outcome::DeadLetter(DlqReason::PermanentError, String::new()),
            other => other,
        }
    }
}
