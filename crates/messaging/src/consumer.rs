//! The consumer runtime: the one place that decides ack, nak, or dead-letter.
//!
//! The handler contract (after Watermill): a handler returns `Ok(())` → ack;
//! [`HandlerError::Transient`] → nak with the schedule's delay, or, on the last allowed delivery,
//! dead-letter (`max_deliveries`) and term; [`HandlerError::Permanent`] → dead-letter
//! (`permanent_error`) and term. Payloads that do not decode never reach a handler: they are
//! dead-lettered as `malformed`, `unknown_type` or `schema_invalid`. A message that cannot be
//! dead-lettered (the DLQ publish failed) is nak'd, never termed, so nothing is lost.
//!
//! Fetching is pull-based with bounded concurrency: the runtime never asks for more messages
//! than it has free handler slots, so a slow handler creates back-pressure on the server rather
//! than a pile of messages whose ack wait expires in memory. While a handler runs, progress acks
//! keep its message from being redelivered; a handler that runs past `handler_timeout` is
//! abandoned and its message nak'd.
//!
//! Every failure to fetch (lost connection, restarted server, deleted consumer) is handled the
//! same way: back off, re-provision the consumer, fetch again. On shutdown the runtime stops
//! fetching, lets in-flight handlers finish, and flushes the connection so their acks reach the
//! server before it returns.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind};
use futures_util::{FutureExt, StreamExt};
use orderflow_events::{Envelope, Event};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use orderflow_telemetry::metrics::names;

use crate::dlq::{DeadLetter, DlqReason};
use crate::topology::{ConsumerSpec, ProvisionReport, ensure_consumer};
use crate::{BoxError, headers};

/// What a handler reports.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// May succeed later (database busy, dependency down): redeliver after a delay.
    #[error("transient: {0}")]
    Transient(BoxError),
    /// Can never succeed (business-impossible, contract violation): dead-letter now.
    #[error("permanent: {0}")]
    Permanent(BoxError),
}

impl HandlerError {
    /// A transient error from anything error-like.
    pub fn transient(e: impl Into<BoxError>) -> Self {
        Self::Transient(e.into())
    }

    /// A permanent error from anything error-like.
    pub fn permanent(e: impl Into<BoxError>) -> Self {
        Self::Permanent(e.into())
    }
}

/// One decoded delivery handed to a handler.
#[derive(Debug)]
pub struct Delivery<T> {
    /// The validated event.
    pub envelope: Envelope<T>,
    /// The subject it arrived on (base or express lane).
    pub subject: String,
    /// The NATS headers.
    pub headers: Option<HeaderMap>,
    /// Its sequence in the stream.
    pub stream_seq: u64,
    /// 1 on first delivery.
    pub delivered: i64,
}

impl<T> Delivery<T> {
    /// The `traceparent` header, if any.
    pub fn traceparent(&self) -> Option<&str> {
        headers::get(self.headers.as_ref(), headers::TRACEPARENT)
    }

    /// Whether it arrived on the express lane.
    pub fn is_express(&self) -> bool {
        orderflow_events::EventKind::is_express_subject(&self.subject)
    }

    /// The event `data`, caused by this delivery — same correlation id, trace context continued —
    /// as a message for the outbox, on the lane this delivery came on. `source` is the emitting
    /// service's CloudEvents source.
    ///
    /// The lane rule: a follow-up travels on its order's lane. A service that remembers the lane
    /// with the order's state (the order service, inventory's reservations) uses what it
    /// remembered ([`Self::follow_up_on`]), so that a cause delivered on the other lane (a replay,
    /// a misrouted publish) does not move the order; one that does not, follows its cause.
    pub fn follow_up<E: Event>(&self, source: &str, data: E) -> Result<crate::OutgoingMessage, HandlerError> {
        self.follow_up_on(source, data, self.is_express())
    }

    /// [`Self::follow_up`] on the lane the service remembered for the order.
    pub fn follow_up_on<E: Event>(
        &self,
        source: &str,
        data: E,
        express: bool,
    ) -> Result<crate::OutgoingMessage, HandlerError> {
        let envelope = crate::publish::follow_up(source, &self.envelope, data);
        // Serializing our own types cannot fail in practice; if it did, retrying would not help.
        crate::OutgoingMessage::from_envelope(&envelope, express).map_err(HandlerError::permanent)
    }
}

/// Processes one event type. Implemented for async closures `Fn(Delivery<T>) -> Future`.
pub trait Handler<T: Event>: Send + Sync + 'static {
    /// Handles one delivery. Must be idempotent: the same event may arrive more than once.
    fn handle(&self, delivery: Delivery<T>) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

impl<T, F, Fut> Handler<T> for F
where
    T: Event,
    F: Fn(Delivery<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send,
{
    fn handle(&self, delivery: Delivery<T>) -> impl Future<Output = Result<(), HandlerError>> + Send {
        self(delivery)
    }
}

/// Tuning of one runtime.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Handlers running at once.
    pub concurrency: usize,
    /// Largest pull request.
    pub fetch_batch: usize,
    /// How long a pull request waits on the server for messages.
    pub fetch_expires: Duration,
    /// A handler running longer is abandoned and its message nak'd.
    pub handler_timeout: Duration,
    /// Backoff after a failed fetch: first delay.
    pub retry_min: Duration,
    /// Backoff after a failed fetch: ceiling.
    pub retry_max: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            concurrency: 32,
            fetch_batch: 64,
            fetch_expires: Duration::from_secs(2),
            handler_timeout: Duration::from_secs(60),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
        }
    }
}

/// Where a runtime is, for readiness checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsumerState {
    /// Provisioning its consumer.
    Starting,
    /// Fetching and handling.
    Running,
    /// Not fetching because its pause switch is on (e.g. the circuit breaker is open).
    Paused,
    /// Fetching failed; backing off and re-provisioning.
    Recovering {
        /// The last error.
        error: String,
    },
    /// Shut down.
    Stopped,
}

impl ConsumerState {
    /// Running or deliberately paused: the consumer is healthy.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Self::Running | Self::Paused)
    }
}

/// A running runtime.
#[derive(Debug)]
pub struct ConsumerHandle {
    name: String,
    state: watch::Receiver<ConsumerState>,
    task: tokio::task::JoinHandle<()>,
}

impl ConsumerHandle {
    /// The durable name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current state.
    pub fn state(&self) -> ConsumerState {
        self.state.borrow().clone()
    }

    /// A receiver that sees every state change.
    pub fn watch_state(&self) -> watch::Receiver<ConsumerState> {
        self.state.clone()
    }

    /// Waits for the runtime to stop (cancel its shutdown token first).
    pub async fn join(self) {
        if let Err(e) = self.task.await {
            tracing::error!(consumer = %self.name, error = %e, "consumer runtime task failed");
        }
    }
}

/// Runs one handler on one durable consumer.
#[derive(Debug)]
pub struct ConsumerRuntime<T, H> {
    js: jetstream::Context,
    spec: ConsumerSpec,
    config: RuntimeConfig,
    handler: H,
    pause: Option<watch::Receiver<bool>>,
    _event: PhantomData<fn() -> T>,
}

impl<T: Event, H: Handler<T>> ConsumerRuntime<T, H> {
    /// A runtime with default tuning.
    pub fn new(js: jetstream::Context, spec: ConsumerSpec, handler: H) -> Self {
        Self { js, spec, config: RuntimeConfig::default(), handler, pause: None, _event: PhantomData }
    }

    /// Replaces the tuning.
    pub fn with_config(mut self, config: RuntimeConfig) -> Self {
        self.config = config;
        self
    }

    /// While `paused` is `true` the runtime fetches nothing (in-flight handlers finish): the
    /// payment service pauses while its circuit breaker is open instead of burning deliveries.
    pub fn with_pause(mut self, paused: watch::Receiver<bool>) -> Self {
        self.pause = Some(paused);
        self
    }

    /// Starts the runtime on the current tokio runtime; it stops when `shutdown` is cancelled.
    pub fn spawn(self, shutdown: CancellationToken) -> ConsumerHandle {
        let (tx, rx) = watch::channel(ConsumerState::Starting);
        let name = self.spec.durable.clone();
        let span = tracing::info_span!("consumer", service = %self.spec.service, consumer = %name);
        let task = tokio::spawn(self.run(shutdown, tx).instrument(span));
        ConsumerHandle { name, state: rx, task }
    }

    async fn run(self, shutdown: CancellationToken, state: watch::Sender<ConsumerState>) {
        let Self { js, spec, config, handler, mut pause, .. } = self;
        let service = format!("{}-service", spec.service);
        let shared = Arc::new(Shared { js: js.clone(), spec, config, handler, service });
        let advisories = tokio::spawn(
            watch_max_deliveries(shared.js.clone(), shared.spec.clone(), shutdown.clone()).in_current_span(),
        );
        let gauges = tokio::spawn(
            report_consumer_info(
                shared.js.clone(),
                shared.spec.clone(),
                shared.service.clone(),
                shutdown.clone(),
            )
            .in_current_span(),
        );
        let slots = Arc::new(Semaphore::new(shared.config.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let mut consumer = None;
        let mut failures = 0u32;

        'outer: while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}

            if let Some(p) = pause.as_mut()
                && *p.borrow_and_update()
            {
                state.send_replace(ConsumerState::Paused);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    changed = p.changed() => if changed.is_err() { pause = None },
                }
                continue;
            }

            if failures > 0 {
                let delay = crate::connect::reconnect_delay(
                    usize::try_from(failures - 1).unwrap_or(usize::MAX),
                    shared.config.retry_min,
                    shared.config.retry_max,
                );
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }

            let current = match &consumer {
                Some(c) => c,
                None => match ensure_consumer(&js, &shared.spec, &mut ProvisionReport::default()).await {
                    Ok(c) => {
                        state.send_replace(ConsumerState::Running);
                        consumer.insert(c)
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, attempt = failures, "consumer not available yet");
                        state.send_replace(ConsumerState::Recovering { error: e.to_string() });
                        continue;
                    }
                },
            };

            // Never ask for more than there are free slots; wait for at least one.
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let want = (slots.available_permits() + 1).min(shared.config.fetch_batch.max(1));
            let request = current.batch().max_messages(want).expires(shared.config.fetch_expires).messages();
            let mut batch = match tokio::select! { _ = shutdown.cancelled() => break, b = request => b } {
                Ok(b) => b,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, attempt = failures, "pull request failed");
                    state.send_replace(ConsumerState::Recovering { error: e.to_string() });
                    consumer = None;
                    continue;
                }
            };

            let mut slot = Some(first);
            // The server answers an expired pull with a timeout status; if that answer is lost
            // (connection dropped), give up on the request shortly after it expired.
            let idle_limit = shared.config.fetch_expires + Duration::from_secs(1);
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break 'outer,
                    n = tokio::time::timeout(idle_limit, batch.next()) => n,
                };
                match next {
                    Err(_elapsed) => break,
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        failures += 1;
                        tracing::warn!(error = %e, attempt = failures, "fetch failed; re-provisioning");
                        state.send_replace(ConsumerState::Recovering { error: e.to_string() });
                        consumer = None;
                        break;
                    }
                    Ok(Some(Ok(msg))) => {
                        if failures > 0 {
                            failures = 0;
                            state.send_replace(ConsumerState::Running);
                        }
                        let permit = match slot.take() {
                            Some(p) => p,
                            None => tokio::select! {
                                // The message stays un-acked and is redelivered after ack wait.
                                _ = shutdown.cancelled() => break 'outer,
                                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break 'outer },
                            },
                        };
                        let shared = Arc::clone(&shared);
                        tasks.spawn(async move { shared.process(msg, permit).await }.in_current_span());
                    }
                }
            }
        }

        // Drain: no new fetches; in-flight handlers finish and their acks are flushed.
        while tasks.join_next().await.is_some() {}
        if let Err(e) = js.client().flush().await {
            tracing::warn!(error = %e, "flushing acks on shutdown failed; they will be redelivered");
        }
        advisories.abort();
        gauges.abort();
        state.send_replace(ConsumerState::Stopped);
        tracing::debug!("consumer stopped");
    }
}

struct Shared<H> {
    js: jetstream::Context,
    spec: ConsumerSpec,
    config: RuntimeConfig,
    handler: H,
    /// The `service` label of this runtime's metrics (`inventory-service`).
    service: String,
}

/// How one delivery ended.
enum Outcome {
    Ack,
    Nak(Duration),
    DeadLetter(DlqReason, String),
}

impl<H> Shared<H> {
    async fn process<T: Event>(&self, msg: jetstream::Message, _slot: OwnedSemaphorePermit)
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
        let outcome = match orderflow_events::decode::<T>(&msg.payload) {
            Err(e) => {
                self.count(names::MESSAGES_FAILED, &subject, Some(("kind", "undecodable")));
                let reason = e.kind().as_str().parse().unwrap_or(DlqReason::SchemaInvalid);
                Outcome::DeadLetter(reason, e.to_string())
            }
            Ok(envelope) => {
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
                    order_id = %envelope.subject,
                    event_id = %envelope.id,
                    stream_seq,
                    delivered,
                );
                let parent = headers::get(msg.headers.as_ref(), headers::TRACEPARENT)
                    .or(envelope.traceparent.as_deref());
                orderflow_telemetry::trace::set_parent(&span, parent);
                let delivery = Delivery {
                    envelope,
                    subject: subject.clone(),
                    headers: msg.headers.clone(),
                    stream_seq,
                    delivered,
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

    async fn run_handler<T: Event>(&self, msg: &jetstream::Message, delivery: Delivery<T>) -> Outcome
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

/// Every few seconds: the consumer's pending and ack-pending counts from JetStream.
async fn report_consumer_info(
    js: jetstream::Context,
    spec: ConsumerSpec,
    service: String,
    shutdown: CancellationToken,
) {
    let labels = [("service", service), ("consumer", spec.durable.clone())];
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(stream) = js.get_stream_no_info(&spec.stream).await else { continue };
        if let Ok(info) = stream.consumer_info(&spec.durable).await {
            metrics::gauge!(names::CONSUMER_PENDING, &labels).set(info.num_pending as f64);
            metrics::gauge!(names::CONSUMER_ACK_PENDING, &labels).set(info.num_ack_pending as f64);
        }
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

/// The server gives up on a message by itself when its last delivery is never answered (the
/// process died mid-handler). It says so in a MAX_DELIVERIES advisory; this copies such messages
/// to the DLQ so they do not vanish. Several instances may all do it: the DLQ message id makes
/// the copies one.
async fn watch_max_deliveries(js: jetstream::Context, spec: ConsumerSpec, shutdown: CancellationToken) {
    #[derive(serde::Deserialize)]
    struct Advisory {
        stream_seq: u64,
        deliveries: i64,
    }
    let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}", spec.stream, spec.durable);
    let client = js.client();
    let mut sub = match client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch max-delivery advisories");
            return;
        }
    };
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return,
            m = sub.next() => match m { Some(m) => m, None => return },
        };
        let Ok(adv) = serde_json::from_slice::<Advisory>(&msg.payload) else { continue };
        let copied = async {
            let stream = js.get_stream_no_info(&spec.stream).await?;
            let original = stream.get_raw_message(adv.stream_seq).await?;
            let letter = DeadLetter {
                reason: DlqReason::MaxDeliveries,
                error: "delivery limit reached without an answer from a handler (crashed or stuck)"
                    .to_owned(),
                original_subject: original.subject.to_string(),
                stream: spec.stream.clone(),
                stream_seq: adv.stream_seq,
                consumer: spec.durable.clone(),
                delivered: adv.deliveries,
                headers: Some(original.headers),
                payload: original.payload,
            };
            letter.publish(&js).await?;
            Ok::<_, BoxError>(())
        }
        .await;
        match copied {
            Ok(()) => {
                tracing::warn!(stream_seq = adv.stream_seq, "dead-lettered after the server's delivery limit")
            }
            Err(e) => {
                tracing::error!(stream_seq = adv.stream_seq, error = %e, "could not dead-letter an exhausted message")
            }
        }
    }
}
