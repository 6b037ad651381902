//! Messages the server gave up on by itself, copied to the DLQ from its MAX_DELIVERIES
//! advisories.
//!
//! The server gives up on a message when its last allowed delivery is never answered (the
//! process died mid-handler, or a nak on the last delivery, sent because the dead letter could
//! not be published, made it the server's call) and says so in an advisory on
//! `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>`. A plain subscription hears
//! that only if an instance happens to listen at that moment. The `ADVISORIES` stream keeps it
//! instead, and each service reads it with one durable pull consumer, `<service>-max-deliveries`,
//! filtered to the advisories of its own consumers and shared by all its instances: each
//! advisory is handled once, by whichever instance is up, whenever one is.
//!
//! The ack rule for one advisory:
//! - the message it names was copied to the DLQ (PubAck received) → ack;
//! - the message's stream or the DLQ could not be reached → nak with the schedule's delay; the
//!   consumer never gives up (`max_deliver` -1), since giving up would lose the message;
//! - the payload is not a MAX_DELIVERIES advisory → term, with a warning: its bytes never change,
//!   so no retry can help, and it is not an event, so the DLQ (whose letters are replayed to event
//!   subjects) is no place for it. Termed is not deleted: it stays in `ADVISORIES` to inspect;
//! - the message it names is no longer in its stream (purged or deleted by hand) → term, with an
//!   error: nothing is left to copy.
//!
//! A copy made again (an ack lost, a redelivery) is stored once: the dead letter's message id is
//! `<consumer>:<stream>:<seq>`, the same as the runtime's own dead letter of that delivery, so the
//! DLQ stream's duplicate window drops the second.

use std::sync::Arc;

use async_nats::jetstream::stream::RawMessageErrorKind;
use async_nats::jetstream::{self, AckKind};
use orderflow_telemetry::metrics::names;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{ConsumerHandle, ConsumerState, RuntimeConfig, Shared};
use crate::dlq::{DeadLetter, DlqReason};
use crate::topology::ConsumerSpec;

/// Characters of a payload that is not an advisory shown in the log line about it.
const MAX_LOGGED: usize = 256;
/// The `Orderflow-Dlq-Error` of a message copied from an advisory.
const NO_ANSWER: &str = "delivery limit reached without an answer from a handler (crashed or stuck)";

/// Runs a service's max-deliveries consumer ([`ConsumerSpec::for_max_deliveries`]) on the
/// runtime's fetch loop: every MAX_DELIVERIES advisory of the service's consumers becomes a dead
/// letter with reason `max_deliveries`.
///
/// ```no_run
/// # async fn f(js: async_nats::jetstream::Context) {
/// use orderflow_events::EventKind;
/// use orderflow_messaging::{ConsumerSpec, MaxDeliveriesRuntime};
///
/// let watched = ConsumerSpec::for_event("inventory", EventKind::OrdersCreated);
/// let spec = ConsumerSpec::for_max_deliveries(
///     "inventory",
///     [(watched.stream.as_str(), watched.durable.as_str())],
/// );
/// let stop = tokio_util::sync::CancellationToken::new();
/// let handle = MaxDeliveriesRuntime::new(js, spec).spawn(stop.clone());
/// # stop.cancel();
/// # handle.join().await;
/// # }
/// ```
#[derive(Debug)]
pub struct MaxDeliveriesRuntime {
    js: jetstream::Context,
    spec: ConsumerSpec,
    config: RuntimeConfig,
}

/// The "handler" of a max-deliveries runtime: copying needs nothing beyond [`Shared`].
#[derive(Debug)]
pub(super) struct CopyToDlq;

impl MaxDeliveriesRuntime {
    /// A runtime with default tuning.
    pub fn new(js: jetstream::Context, spec: ConsumerSpec) -> Self {
        Self { js, spec, config: RuntimeConfig::default() }
    }

    /// Replaces the tuning.
    pub fn with_config(mut self, config: RuntimeConfig) -> Self {
        self.config = config;
        self
    }

    /// Starts the runtime on the current tokio runtime; it stops when `shutdown` is cancelled
    /// (never paused: copying to the DLQ depends on nothing a service pauses for).
    pub fn spawn(self, shutdown: CancellationToken) -> ConsumerHandle {
        let (tx, rx) = watch::channel(ConsumerState::Starting);
        let Self { js, spec, config } = self;
        let name = spec.durable.clone();
        let span = tracing::info_span!("consumer", service = %spec.service, consumer = %name);
        let service = format!("{}-service", spec.service);
        let shared = Arc::new(Shared { js, spec, config, handler: CopyToDlq, service });
        let process =
            |shared: Arc<Shared<CopyToDlq>>, msg, permit| async move { shared.copy(msg, permit).await };
        let task = tokio::spawn(shared.run_loop(None, shutdown, tx, process).instrument(span));
        ConsumerHandle { name, state: rx, task }
    }
}

/// The fields of the server's advisory (`io.nats.jetstream.advisory.v1.max_deliver`) used here.
#[derive(Debug, serde::Deserialize)]
struct Advisory {
    stream: String,
    consumer: String,
    stream_seq: u64,
    deliveries: u64,
}

/// How one advisory ended.
enum Verdict {
    Copied,
    Retry,
    Drop,
}

impl Shared<CopyToDlq> {
    async fn copy(&self, msg: jetstream::Message, _slot: OwnedSemaphorePermit) {
        let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
        let kind = match self.copy_advisory(&msg.payload).await {
            Verdict::Copied => AckKind::Ack,
            Verdict::Retry => AckKind::Nak(Some(self.spec.schedule.delay_after(delivered))),
            Verdict::Drop => AckKind::Term,
        };
        if let Err(e) = msg.ack_with(kind).await {
            tracing::warn!(error = %e, "answering an advisory failed; it will be redelivered");
        }
    }

    async fn copy_advisory(&self, payload: &[u8]) -> Verdict {
        let adv = match serde_json::from_slice::<Advisory>(payload) {
            Ok(adv) => adv,
            Err(e) => {
                let shown: String = String::from_utf8_lossy(payload).chars().take(MAX_LOGGED).collect();
                tracing::warn!(
                    error = %e,
                    payload = %shown,
                    "not a MAX_DELIVERIES advisory; termed (it stays in the ADVISORIES stream)"
                );
                return Verdict::Drop;
            }
        };
        let span = tracing::warn_span!(
            "max_deliveries",
            stream = %adv.stream,
            original_consumer = %adv.consumer,
            stream_seq = adv.stream_seq,
            deliveries = adv.deliveries,
        );
        self.copy_message(adv).instrument(span).await
    }

    async fn copy_message(&self, adv: Advisory) -> Verdict {
        let stream = match self.js.get_stream_no_info(&adv.stream).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "an advisory naming no valid stream; termed");
                return Verdict::Drop;
            }
        };
        let original = match stream.get_raw_message(adv.stream_seq).await {
            Ok(m) => m,
            Err(e) if is_gone(e.kind()) => {
                tracing::error!(
                    error = %e,
                    "the server gave up on a message that is no longer in its stream; nothing to dead-letter"
                );
                return Verdict::Drop;
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading a message the server gave up on failed; will retry");
                return Verdict::Retry;
            }
        };
        let letter = DeadLetter {
            reason: DlqReason::MaxDeliveries,
            error: NO_ANSWER.to_owned(),
            original_subject: original.subject.to_string(),
            stream: adv.stream,
            stream_seq: adv.stream_seq,
            consumer: adv.consumer,
            delivered: i64::try_from(adv.deliveries).unwrap_or(i64::MAX),
            headers: Some(original.headers),
            payload: original.payload,
        };
        match letter.publish(&self.js).await {
            Ok(ack) if ack.duplicate => {
                tracing::info!("already dead-lettered");
                Verdict::Copied
            }
            Ok(_) => {
                tracing::warn!(reason = %letter.reason, "dead-lettered after the server's delivery limit");
                let labels = [
                    ("service", self.service.clone()),
                    ("subject", letter.original_subject.clone()),
                    ("reason", letter.reason.as_str().to_owned()),
                ];
                metrics::counter!(names::MESSAGES_DEAD_LETTERED, &labels).increment(1);
                Verdict::Copied
            }
            Err(e) => {
                tracing::error!(error = %e, "copying to the DLQ failed; will retry");
                Verdict::Retry
            }
        }
    }
}

/// The message or its whole stream no longer exists: no retry brings it back.
fn is_gone(kind: RawMessageErrorKind) -> bool {
    match kind {
        RawMessageErrorKind::NoMessageFound => true,
        RawMessageErrorKind::JetStream(e) => {
            e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                || e.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND
        }
        RawMessageErrorKind::InvalidSubject | RawMessageErrorKind::Other => false,
    }
}
