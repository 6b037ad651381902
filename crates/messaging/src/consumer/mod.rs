//! The consumer runtime: the one place that decides ack, nak, or dead-letter.
//!
//! The handler contract (after Watermill): a handler returns `Ok(())` → ack;
//! [`HandlerError::Transient`] → nak with the schedule's delay, or, on the last allowed delivery,
//! dead-letter (`max_deliveries`) and term; [`HandlerError::Permanent`] → dead-letter
//! (`permanent_error`) and term. Payloads that do not decode never reach a handler: they are
//! dead-lettered as `malformed`, `unknown_type` or `schema_invalid`. A message that cannot be
//! dead-lettered (the DLQ publish failed) is nak'd, never termed, so nothing is lost.
//!
//! A message whose last delivery is never answered (the process died mid-handler) is given up on
//! by the server itself; [`MaxDeliveriesRuntime`] copies it to the DLQ from the server's
//! MAX_DELIVERIES advisory, kept in the `ADVISORIES` stream, on the same fetch loop.
//!
//! Fetching is pull-based with bounded concurrency: the runtime never asks for more messages
//! than it has free handler slots, so a slow handler creates back-pressure on the server rather
//! than a pile of messages whose ack wait expires in memory. While a handler runs, progress acks
//! keep its message from being redelivered; a handler that runs past `handler_timeout` is
//! abandoned and its message nak'd.
//!
//! Every failure to fetch (lost connection, a consumer leader being elected, deleted consumer) is
//! handled the same way: back off and fetch again, and after a few failures in a row provision
//! the consumer again first. A pull request whose connection drops is asked again on the new one
//! at once. On shutdown the runtime stops
//! fetching, lets in-flight handlers finish, and flushes the connection so their acks reach the
//! server before it returns.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures_util::StreamExt;
use orderflow_events::{Envelope, Event, Versioned};
use orderflow_telemetry::trace::TraceContext;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::BoxError;
use crate::connect::ConnectionMark;
use crate::topology::{ConsumerSpec, ProvisionReport, ensure_consumer};
use crate::versions::EventVersions;

mod ack;
mod advisories;
mod gauges;

use ack::Shared;
pub use advisories::MaxDeliveriesRuntime;
use gauges::report_consumer_info;

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
    pub(crate) subject: String,
    /// The NATS headers.
    pub headers: Option<HeaderMap>,
    /// 1 on first delivery.
    pub delivered: i64,
    /// The trace it is handled in: its `traceparent` (header, else envelope) when valid, else a
    /// new trace, so that what it causes is always traced.
    pub(crate) trace: TraceContext,
    /// The versions the service publishes its follow-ups in.
    pub(crate) versions: Arc<EventVersions>,
}

impl<T> Delivery<T> {
    /// The trace context it is handled in: what the handler's own outgoing calls (an HTTP
    /// request, say) carry, through [`orderflow_telemetry::trace::call_traceparent`].
    pub fn trace(&self) -> &TraceContext {
        &self.trace
    }

    /// Whether it arrived on the express lane.
    pub fn is_express(&self) -> bool {
        orderflow_events::EventKind::is_express_subject(&self.subject)
    }

    /// The versions the service publishes.
    pub fn versions(&self) -> &EventVersions {
        &self.versions
    }

    /// The event `data`, caused by this delivery — same correlation id, trace context continued —
    /// as messages for the outbox, one per version the service publishes, on the lane this
    /// delivery came on. `source` is the emitting service's CloudEvents source.
    ///
    /// The lane rule: a follow-up travels on its order's lane. A service that remembers the lane
    /// with the order's state (the order service, inventory's reservations) uses what it
    /// remembered ([`Self::follow_up_on`]), so that a cause delivered on the other lane (a replay,
    /// a misrouted publish) does not move the order; one that does not, follows its cause.
    ///
    /// # Errors
    /// Permanent: no published version can carry the event (see [`EventVersions::messages`]).
    pub fn follow_up<E: Versioned>(
        &self,
        source: &str,
        data: E,
    ) -> Result<Vec<crate::OutgoingMessage>, HandlerError> {
        self.follow_up_on(source, data, self.is_express())
    }

    /// [`Self::follow_up`] on the lane the service remembered for the order.
    ///
    /// # Errors
    /// As [`Self::follow_up`].
    pub fn follow_up_on<E: Versioned>(
        &self,
        source: &str,
        data: E,
        express: bool,
    ) -> Result<Vec<crate::OutgoingMessage>, HandlerError> {
        let envelope = crate::publish::follow_up(source, &self.envelope, &self.trace, data);
        // Retrying cannot make a version appear or serialization succeed.
        self.versions.messages(&envelope, express).map_err(HandlerError::permanent)
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

/// Failed fetches in a row before the consumer is provisioned again (looked up, re-created if it
/// was deleted). A failed pull is most often a consumer whose leader is being elected (a NATS
/// node lost): pulling again after the backoff gets the new leader, with no API round trip.
const REPROVISION_AFTER: u32 = 3;

/// Timeout of the provisioning requests of a running consumer.
const PROVISION_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// The versions follow-ups are published in ([`Delivery::follow_up`]).
    pub versions: Arc<EventVersions>,
    /// Create or update the consumer when it is missing or drifted; off, only bind to it (a
    /// service identity may not manage consumers: the admin identity provisions them).
    pub provision: bool,
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
            versions: Arc::new(EventVersions::default()),
            provision: true,
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

impl<T: Versioned, H: Handler<T>> ConsumerRuntime<T, H> {
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
        let Self { js, spec, config, handler, pause, .. } = self;
        let service = format!("{}-service", spec.service);
        let shared = Arc::new(Shared { js, spec, config, handler, service });
        let process =
            |shared: Arc<Shared<H>>, msg, permit| async move { shared.process::<T>(msg, permit).await };
        shared.run_loop(pause, shutdown, state, process).await;
    }
}

impl<H: Send + Sync + 'static> Shared<H> {
    /// The fetch loop every runtime shares (see the module docs): provisioning, pausing, pulling
    /// no more than there are free handler slots, recovering, draining; `process` answers each
    /// message (the event runtime's ack rule, or the max-deliveries copy).
    async fn run_loop<F, Fut>(
        self: Arc<Self>,
        mut pause: Option<watch::Receiver<bool>>,
        shutdown: CancellationToken,
        state: watch::Sender<ConsumerState>,
        process: F,
    ) where
        F: Fn(Arc<Self>, jetstream::Message, OwnedSemaphorePermit) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let shared = self;
        let js = shared.js.clone();
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
        let client = js.client();
        // Provisioning again asks the consumer's leader; while a lost leader is being replaced
        // the request goes unanswered, and the client's 10 s timeout held the consumer that long
        // after the new leader was there. The first provisioning keeps the client's timeout:
        // creating a replicated consumer on a busy cluster can take seconds.
        let mut reprovision = js.clone();
        reprovision.set_timeout(PROVISION_TIMEOUT);
        let mut provisioned = false;

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
                None => match ensure_consumer(
                    if provisioned { &reprovision } else { &js },
                    &shared.spec,
                    &mut ProvisionReport::default(),
                    shared.config.provision,
                )
                .await
                {
                    Ok(c) => {
                        provisioned = true;
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
            let connection = ConnectionMark::of(&client);
            let request = current.batch().max_messages(want).expires(shared.config.fetch_expires).messages();
            let mut batch = match tokio::select! { _ = shutdown.cancelled() => break, b = request => b } {
                Ok(b) => b,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, attempt = failures, "pull request failed");
                    state.send_replace(ConsumerState::Recovering { error: e.to_string() });
                    if failures >= REPROVISION_AFTER {
                        consumer = None;
                    }
                    continue;
                }
            };

            let mut slot = Some(first);
            // The server answers an expired pull with a timeout status; if that answer is lost
            // (connection dropped), give up on the request shortly after it expired.
            let idle_limit = shared.config.fetch_expires + Duration::from_secs(1);
            // A pull request sent on a connection that is gone (its NATS node lost) gets nothing
            // more: ask again on the new one at once instead of waiting out the idle limit.
            let lost = connection.lost(&client);
            tokio::pin!(lost);
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break 'outer,
                    () = &mut lost => {
                        // Ask again once connected: a pull sent while reconnecting is lost too,
                        // and asking at once would spin until the client is back.
                        tokio::select! {
                            _ = shutdown.cancelled() => break 'outer,
                            () = crate::connect::connected(&client) => {}
                        }
                        break;
                    }
                    n = tokio::time::timeout(idle_limit, batch.next()) => n,
                };
                match next {
                    Err(_elapsed) => break,
                    Ok(None) => {
                        // The pull ended as the server ends it (expired or filled): the consumer
                        // works again even if nothing came. A quiet consumer (ADVISORIES) gets no
                        // message to clear `Recovering` with, and would stay unready for good
                        // after one failed fetch (a 503 while a new R3 consumer has no leader).
                        if failures > 0 {
                            failures = 0;
                            state.send_replace(ConsumerState::Running);
                        }
                        break;
                    }
                    Ok(Some(Err(e))) => {
                        failures += 1;
                        tracing::warn!(error = %e, attempt = failures, "fetch failed; fetching again");
                        state.send_replace(ConsumerState::Recovering { error: e.to_string() });
                        if failures >= REPROVISION_AFTER {
                            consumer = None;
                        }
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
                        tasks.spawn(process(Arc::clone(&shared), msg, permit).in_current_span());
                    }
                }
            }
        }

        // Drain: no new fetches; in-flight handlers finish and their acks are flushed.
        while tasks.join_next().await.is_some() {}
        if let Err(e) = js.client().flush().await {
            tracing::warn!(error = %e, "flushing acks on shutdown failed; they will be redelivered");
        }
        gauges.abort();
        state.send_replace(ConsumerState::Stopped);
        tracing::debug!("consumer stopped");
    }
}
