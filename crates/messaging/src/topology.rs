//! The streams and durable consumers of SPEC.md, and their idempotent provisioning.
//!
//! Provisioning creates what is missing, updates configuration that drifted from the spec and
//! leaves everything else alone, so every service can run it at start-up and a second run is a
//! no-op. Streams use Limits retention (events stay replayable; WorkQueue and Interest lose
//! messages at MaxDeliver) and file storage.
//!
//! Every stream is bounded in age and in bytes ([`EVENT_MAX_AGE`], [`EVENT_MAX_BYTES`],
//! [`DLQ_MAX_AGE`], [`DLQ_MAX_BYTES`]), and the ones orderflow publishes to use
//! `DiscardPolicy::New`: a stream at its byte limit refuses new messages instead of dropping old
//! ones. Nothing is lost then — the outbox keeps
//! the event and publishes it again, the dead-lettering consumer naks and retries — and the
//! `OrderflowStreamNearlyFull` alert (on `orderflow_stream_bytes` / `orderflow_stream_max_bytes`)
//! fires well before. Age still expires messages: an event stream keeps a week of replayable
//! history, the DLQ two weeks, and [`redelivery_horizon`] (how long the services keep their
//! inbox rows) is derived from both.
//!
//! Besides SPEC's four streams there is `ADVISORIES`: the server's MAX_DELIVERIES advisories,
//! kept (7 days, bounded in count and size) until a service's max-deliveries consumer
//! ([`ConsumerSpec::for_max_deliveries`]) has copied the message they name to the DLQ, so an
//! advisory emitted while no instance runs is not lost.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use orderflow_events::{EventKind, Version, subjects};

use crate::schedule::RedeliverySchedule;

/// Default JetStream de-duplication window (SPEC: at least two minutes).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// SPEC's max_deliver for every consumer.
pub(crate) const MAX_DELIVER: i64 = 5;
/// Default bound on un-acked messages per consumer.
pub(crate) const MAX_ACK_PENDING: i64 = 1024;
/// How long `ADVISORIES` keeps an advisory: long enough for a service that is down over a long
/// weekend to come back and copy what the server gave up on meanwhile.
pub(crate) const ADVISORIES_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Bound on the advisories kept (about 300 bytes each): advisories of consumers nobody watches
/// (a benchmark's, an operator's) must not grow the stream without limit.
pub(crate) const ADVISORIES_MAX_MESSAGES: i64 = 1_000_000;
/// Bound on the bytes `ADVISORIES` keeps.
pub(crate) const ADVISORIES_MAX_BYTES: i64 = 512 * 1024 * 1024;
/// How long ORDERS, INVENTORY and PAYMENTS keep an event: a week of history to replay (an
/// analytics rebuild, a consumer recreated from the start, a service back after a long outage).
pub const EVENT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Bytes each event stream may hold. An event is about 1 KB with its headers and an order makes
/// about two per stream, so 8 GiB is about four million orders: a week at ~7 orders/s sustained,
/// or ~8 hours of the 200 orders/s soak. Beyond it the stream refuses publishes (see the module
/// docs) and the alert fires at 80 %. The three event streams, the DLQ and ADVISORIES together
/// reserve about 26.5 GiB per node; `deploy/nats/jetstream.conf` allows 40 GB.
pub const EVENT_MAX_BYTES: i64 = 8 * 1024 * 1024 * 1024;
/// How long the DLQ keeps a dead letter: two weeks, so one that arrives on a Friday evening is
/// still there after a two-week holiday. Longer than the event streams: a dead letter is the
/// only copy left of an event whose stream has expired it.
pub const DLQ_MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);
/// Bytes the DLQ may hold. Dead letters are rare (a poison message, a bug); a full DLQ refuses
/// new ones and the dead-lettering consumer keeps the original message un-acked and retries.
pub const DLQ_MAX_BYTES: i64 = 2 * 1024 * 1024 * 1024;
/// Largest message an event stream stores (headers included). Smaller than the server's
/// `max_payload` ([`MAX_PAYLOAD`]) so that any stored event still fits once dead-lettering adds
/// its `Orderflow-Dlq-*` headers; the DLQ itself takes up to `max_payload`.
pub const EVENT_MAX_MSG_SIZE: i32 = 128 * 1024;
/// The `max_payload` orderflow's NATS servers are configured with (256 KiB, a quarter of the
/// server default): an order is at most a 64 KiB HTTP body, so its event is well below, and a
/// client that floods large messages is cut off sooner.
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// The longest time after an event was first processed at which a copy of it can still be
/// delivered to a handler, so how long an inbox row must be kept for the copy to stay a no-op:
/// - a redelivery after a lost ack: within `max_deliver` deliveries on the standard schedule
///   (plus the handlers' own time, minutes at most, which the inbox's day of margin covers);
/// - a duplicate publish: within the JetStream duplicate window (de-duplicated before that);
/// - a consumer recreated from the start of its stream (deleted by an operator, lost with a
///   server's store): every event the stream still holds, so up to [`EVENT_MAX_AGE`];
/// - a DLQ replay of an event that did go through (processed, but its last ack lost): it reached
///   the DLQ at most the redelivery span later, plus `ADVISORIES`' 7 days when it went through
///   a MAX_DELIVERIES advisory that waited for a service to come back, and the DLQ keeps it for
///   [`DLQ_MAX_AGE`].
///
/// About 21 days with today's constants. Not covered: an outbox row re-sent after NATS lost its
/// PubAck *and* the service could not mark it for longer than this (see docs/SECURITY.md).
pub fn redelivery_horizon() -> Duration {
    let schedule = RedeliverySchedule::standard();
    let deliveries = u32::try_from(MAX_DELIVER).unwrap_or(u32::MAX);
    // Each delivery waits at most its ack wait plus the longest backoff delay before the next.
    let longest = schedule.delays().iter().copied().max().unwrap_or_default();
    let redelivery = (schedule.ack_wait().saturating_add(longest)).saturating_mul(deliveries);
    let via_dlq = redelivery.saturating_add(ADVISORIES_MAX_AGE).saturating_add(DLQ_MAX_AGE);
    let replay = EVENT_MAX_AGE.max(via_dlq);
    replay.max(redelivery).max(DUPLICATE_WINDOW)
}

/// The suffix of a service's max-deliveries consumer: `inventory-max-deliveries`.
pub(crate) const MAX_DELIVERIES_SUFFIX: &str = "-max-deliveries";

/// One stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamSpec {
    /// `ORDERS`, `INVENTORY`, `PAYMENTS`, `DLQ`, `ADVISORIES`.
    pub(crate) name: String,
    /// Subject filters (`orders.>`).
    pub(crate) subjects: Vec<String>,
    /// 1 locally, 3 in the cluster.
    pub(crate) replicas: usize,
    /// De-duplication window for `Nats-Msg-Id`.
    pub(crate) duplicate_window: Duration,
    /// Maximum age of a message; zero keeps messages until limits say otherwise.
    pub(crate) max_age: Duration,
    /// Most messages kept; -1 for no limit.
    pub(crate) max_messages: i64,
    /// Most bytes kept; -1 for no limit. What happens at the limit is [`Self::discard`].
    pub(crate) max_bytes: i64,
    /// Largest message stored (headers included); -1 for the server's `max_payload`.
    pub(crate) max_message_size: i32,
    /// What happens at a limit: `New` refuses new messages (every stream orderflow publishes
    /// to), `Old` drops the oldest (`ADVISORIES`, which the server fills and nobody can retry).
    pub(crate) discard: stream::DiscardPolicy,
}

impl StreamSpec {
    fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: self.subjects.clone(),
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            max_age: self.max_age,
            max_messages: self.max_messages,
            max_bytes: self.max_bytes,
            max_message_size: self.max_message_size,
            discard: self.discard,
            allow_direct: true,
            ..Default::default()
        }
    }

    /// The fields orderflow owns differ between `have` and this spec.
    fn drifted(&self, have: &stream::Config) -> bool {
        let want = self.config();
        have.subjects != want.subjects
            || have.retention != want.retention
            || have.storage != want.storage
            || have.num_replicas != want.num_replicas
            || have.duplicate_window != want.duplicate_window
            || have.max_age != want.max_age
            || have.max_messages != want.max_messages
            || have.max_bytes != want.max_bytes
            || have.max_message_size != want.max_message_size
            || have.discard != want.discard
            || have.allow_direct != want.allow_direct
    }
}

/// One durable pull consumer.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerSpec {
    /// The service that owns it (`inventory`), for logs.
    pub(crate) service: String,
    /// The stream it reads.
    pub stream: String,
    /// Durable name (contract: `<service>-<subject with dashes>`).
    pub durable: String,
    /// Subjects it receives.
    pub(crate) filter_subjects: Vec<String>,
    /// Deliveries before the message is dead-lettered.
    pub(crate) max_deliver: i64,
    /// Delays between deliveries (server BackOff and runtime naks).
    pub(crate) schedule: RedeliverySchedule,
    /// Bound on un-acked messages.
    pub max_ack_pending: i64,
    /// The event it carries and its lane (`true`: express); `None` for the advisories' consumer.
    pub(crate) event: Option<(EventKind, bool)>,
    /// The versions of the event it subscribes to and decodes (every one this build knows,
    /// unless [`Self::accepting`] narrowed them).
    pub(crate) accept: Vec<Version>,
}

impl ConsumerSpec {
    /// The contract consumer of `service` for `kind`: `inventory-orders-created`, on the
    /// standard lane's subject of every version of `kind` (`orders.created.v1`,
    /// `orders.created.v2`).
    pub fn for_event(service: &str, kind: EventKind) -> Self {
        Self {
            service: service.to_owned(),
            stream: kind.stream().to_owned(),
            durable: format!("{service}-{}", kind.name().replace('.', "-")),
            filter_subjects: Vec::new(),
            max_deliver: MAX_DELIVER,
            schedule: RedeliverySchedule::standard(),
            max_ack_pending: MAX_ACK_PENDING,
            event: Some((kind, false)),
            accept: Vec::new(),
        }
        .accepting(kind.versions())
    }

    /// The express lane twin: `inventory-orders-created-express` on `<subject>.express`.
    pub(crate) fn express_for_event(service: &str, kind: EventKind) -> Self {
        let mut spec = Self::for_event(service, kind);
        spec.durable.push_str("-express");
        spec.event = Some((kind, true));
        spec.accepting(kind.versions())
    }

    /// Subscribes to and decodes only these versions of the event (those of them the event
    /// has): a service told to accept only v1 neither receives nor understands a v2.
    #[must_use]
    pub fn accepting(mut self, versions: &[Version]) -> Self {
        if let Some((kind, express)) = self.event {
            self.accept = kind.versions().iter().copied().filter(|v| versions.contains(v)).collect();
            self.filter_subjects =
                self.accept.iter().map(|v| kind.at(*v).lane_subject(express).to_owned()).collect();
        }
        self
    }

    /// The versions it decodes.
    pub(crate) fn accepted(&self) -> &[Version] {
        &self.accept
    }

    /// The standard or the express lane's consumer.
    pub fn for_lane(service: &str, kind: EventKind, express: bool) -> Self {
        if express { Self::express_for_event(service, kind) } else { Self::for_event(service, kind) }
    }

    /// The consumer of `service`'s MAX_DELIVERIES advisories (`inventory-max-deliveries` on
    /// `ADVISORIES`), filtered to the advisories of `watched`, the service's own consumers
    /// (`(stream, durable)`): every instance of the service shares it, so each advisory is
    /// handled once, and it is the same consumer whichever instance comes back first.
    ///
    /// It never gives up (`max_deliver` -1): an advisory that could not be handled yet (the
    /// original stream or the DLQ unreachable) is redelivered on the standard schedule until it
    /// can be, since giving up would lose the message it names.
    pub fn for_max_deliveries<'a>(
        service: &str,
        watched: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let mut filter_subjects: Vec<String> = watched
            .into_iter()
            .map(|(stream, durable)| {
                format!("{}{stream}.{durable}", subjects::MAX_DELIVERIES_ADVISORY_PREFIX)
            })
            .collect();
        // Overlapping filters are rejected by the server; a consumer registered twice is one.
        filter_subjects.sort();
        filter_subjects.dedup();
        Self {
            service: service.to_owned(),
            stream: subjects::STREAM_ADVISORIES.to_owned(),
            durable: format!("{service}{MAX_DELIVERIES_SUFFIX}"),
            filter_subjects,
            max_deliver: -1,
            schedule: RedeliverySchedule::standard(),
            max_ack_pending: MAX_ACK_PENDING,
            event: None,
            accept: Vec::new(),
        }
    }

    /// Replaces the redelivery schedule (tests use short ones).
    pub fn with_schedule(mut self, schedule: RedeliverySchedule) -> Self {
        self.schedule = schedule;
        self
    }

    pub(crate) fn config(&self) -> consumer::pull::Config {
        let (filter_subject, filter_subjects) = match self.filter_subjects.as_slice() {
            [one] => (one.clone(), Vec::new()),
            many => (String::new(), many.to_vec()),
        };
        consumer::pull::Config {
            durable_name: Some(self.durable.clone()),
            filter_subject,
            filter_subjects,
            ack_policy: consumer::AckPolicy::Explicit,
            deliver_policy: consumer::DeliverPolicy::All,
            ack_wait: self.schedule.ack_wait(),
            max_deliver: self.max_deliver,
            backoff: self.schedule.delays().to_vec(),
            max_ack_pending: self.max_ack_pending,
            ..Default::default()
        }
    }

    fn drifted(&self, have: &consumer::Config) -> bool {
        let want = self.config();
        let have_filters: Vec<String> = if have.filter_subjects.is_empty() {
            vec![have.filter_subject.clone()].into_iter().filter(|s| !s.is_empty()).collect()
        } else {
            have.filter_subjects.clone()
        };
        have_filters != self.filter_subjects
            || have.ack_policy != want.ack_policy
            || have.max_deliver != want.max_deliver
            || have.backoff != want.backoff
            || have.max_ack_pending != want.max_ack_pending
    }
}

/// Everything to provision.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    /// Streams, created first.
    pub streams: Vec<StreamSpec>,
    /// Consumers.
    pub consumers: Vec<ConsumerSpec>,
}

/// Which service consumes which event: SPEC.md's consumer table, kept in the events crate so the
/// AsyncAPI document lists the same consumers.
pub(crate) use orderflow_events::routing::SUBSCRIPTIONS;

impl Topology {
    /// SPEC.md's streams and consumers (plus an express-lane twin of each consumer), and the
    /// `ADVISORIES` stream. The max-deliveries consumers are not listed: each service creates
    /// its own when it starts, filtered to the consumers it runs.
    pub fn orderflow(replicas: usize) -> Self {
        let stream = |name: &str, subject: &str| StreamSpec {
            name: name.to_owned(),
            subjects: vec![subject.to_owned()],
            replicas,
            duplicate_window: DUPLICATE_WINDOW,
            max_age: EVENT_MAX_AGE,
            max_messages: -1,
            max_bytes: EVENT_MAX_BYTES,
            max_message_size: EVENT_MAX_MSG_SIZE,
            discard: stream::DiscardPolicy::New,
        };
        let streams = vec![
            stream(subjects::STREAM_ORDERS, subjects::STREAM_ORDERS_SUBJECTS),
            stream(subjects::STREAM_INVENTORY, subjects::STREAM_INVENTORY_SUBJECTS),
            stream(subjects::STREAM_PAYMENTS, subjects::STREAM_PAYMENTS_SUBJECTS),
            StreamSpec {
                max_age: DLQ_MAX_AGE,
                max_bytes: DLQ_MAX_BYTES,
                max_message_size: -1,
                ..stream(subjects::STREAM_DLQ, subjects::STREAM_DLQ_SUBJECTS)
            },
            StreamSpec {
                max_message_size: -1,
                // The server publishes advisories without retrying a refused one: at the limit,
                // the oldest go (those of consumers nobody watches pile up there), not the news.
                discard: stream::DiscardPolicy::Old,
                max_age: ADVISORIES_MAX_AGE,
                max_messages: ADVISORIES_MAX_MESSAGES,
                max_bytes: ADVISORIES_MAX_BYTES,
                ..stream(subjects::STREAM_ADVISORIES, subjects::STREAM_ADVISORIES_SUBJECTS)
            },
        ];
        let consumers = SUBSCRIPTIONS
            .iter()
            .flat_map(|&(svc, kind)| {
                [ConsumerSpec::for_event(svc, kind), ConsumerSpec::express_for_event(svc, kind)]
            })
            .collect();
        Self { streams, consumers }
    }

    /// Replaces every consumer's redelivery schedule.
    pub fn with_schedule(mut self, schedule: &RedeliverySchedule) -> Self {
        for c in &mut self.consumers {
            c.schedule = schedule.clone();
        }
        self
    }
}

/// What provisioning did, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProvisionReport {
    /// Streams or consumers created (`stream ORDERS`, `consumer ORDERS/inventory-orders-created`).
    pub created: Vec<String>,
    /// Ones whose configuration was brought back to the spec.
    pub updated: Vec<String>,
}

impl ProvisionReport {
    /// Nothing was created or changed.
    pub fn is_noop(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty()
    }
}

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
#[error("provisioning {what}: {source}")]
pub struct ProvisionError {
    /// The stream or consumer.
    pub(crate) what: String,
    /// The JetStream error.
    #[source]
    pub(crate) source: crate::BoxError,
}

fn perr(what: &str) -> impl FnOnce(crate::BoxError) -> ProvisionError + '_ {
    move |source| ProvisionError { what: what.to_owned(), source }
}

/// Creates or updates every stream and consumer of `topology`.
pub async fn provision(
    js: &jetstream::Context,
    topology: &Topology,
) -> Result<ProvisionReport, ProvisionError> {
    let mut report = ProvisionReport::default();
    for spec in &topology.streams {
        ensure_stream(js, spec, &mut report).await?;
    }
    for spec in &topology.consumers {
        ensure_consumer(js, spec, &mut report, true).await?;
    }
    if !report.is_noop() {
        tracing::info!(created = ?report.created, updated = ?report.updated, "JetStream provisioned");
    }
    Ok(report)
}

async fn ensure_stream(
    js: &jetstream::Context,
    spec: &StreamSpec,
    report: &mut ProvisionReport,
) -> Result<(), ProvisionError> {
    let what = format!("stream {}", spec.name);
    match js.get_stream(&spec.name).await {
        Ok(mut stream) => {
            let have = stream.info().await.map_err(|e| perr(&what)(e.into()))?.config.clone();
            if spec.drifted(&have) {
                tracing::warn!(stream = %spec.name, "stream configuration drifted; updating");
                js.update_stream(spec.config()).await.map_err(|e| perr(&what)(e.into()))?;
                report.updated.push(what);
            }
        }
        Err(e)
            if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(ref js)
                if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            js.create_stream(spec.config()).await.map_err(|e| perr(&what)(e.into()))?;
            report.created.push(what);
        }
        Err(e) => return Err(perr(&what)(e.into())),
    }
    Ok(())
}

/// Creates the consumer if missing or updates it if drifted, and returns a handle to it. The
/// consumer runtime calls this again whenever fetching fails, so a consumer deleted by an
/// operator or lost with a server's store comes back by itself.
///
/// With `provision` off (a service connected as its own identity, which may not manage
/// consumers) it only binds: an existing consumer is used as it is (a drift is logged for the
/// admin to provision), a missing one is an error the runtime retries until the admin identity
/// has created it (`orderflow nats provision`).
pub(crate) async fn ensure_consumer(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
    report: &mut ProvisionReport,
    provision: bool,
) -> Result<consumer::Consumer<consumer::pull::Config>, ProvisionError> {
    let what = format!("consumer {}/{}", spec.stream, spec.durable);
    let stream = js.get_stream_no_info(&spec.stream).await.map_err(|e| perr(&what)(e.into()))?;
    match stream.consumer_info(&spec.durable).await {
        Ok(info) if !spec.drifted(&info.config) => {
            Ok(consumer::Consumer::new(spec.config(), info, js.clone()))
        }
        Ok(info) if !provision => {
            tracing::warn!(
                consumer = %spec.durable,
                "consumer configuration differs from this build's; using it as it is (provision with the admin identity: `orderflow nats provision`)"
            );
            Ok(consumer::Consumer::new(spec.config(), info, js.clone()))
        }
        Err(e) if !provision => Err(perr(&what)(
            format!(
                "{e}; this service only binds (its identity may not create streams or consumers): provision with the admin identity (`orderflow nats provision`)"
            )
            .into(),
        )),
        Ok(_) => {
            tracing::warn!(consumer = %spec.durable, "consumer configuration drifted; updating");
            let c = stream.update_consumer(spec.config()).await.map_err(|e| perr(&what)(e.into()))?;
            report.updated.push(what);
            Ok(c)
        }
        Err(e) if is_not_found(&e) => {
            let c = stream.create_consumer(spec.config()).await.map_err(|e| perr(&what)(e.into()))?;
            report.created.push(what);
            Ok(c)
        }
        Err(e) => Err(perr(&what)(e.into())),
    }
}

fn is_not_found(e: &jetstream::context::ConsumerInfoError) -> bool {
    e.kind() == jetstream::context::ConsumerInfoErrorKind::NotFound
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn contract_consumer_names_match_spec() {
        let names: Vec<_> =
            SUBSCRIPTIONS.iter().map(|&(s, k)| ConsumerSpec::for_event(s, k).durable).collect();
        assert_eq!(
            names,
            [
                "inventory-orders-created",
                "inventory-payments-completed",
                "inventory-payments-failed",
                "payment-inventory-reserved",
                "order-inventory-rejected",
                "order-payments-completed",
                "order-payments-failed",
            ]
        );
    }

    #[test]
    fn a_max_deliveries_consumer_watches_exactly_its_services_consumers_and_never_gives_up() {
        let watched = [
            ConsumerSpec::for_event("order", EventKind::PaymentsFailed),
            ConsumerSpec::express_for_event("order", EventKind::PaymentsFailed),
            ConsumerSpec::for_event("order", EventKind::InventoryRejected),
        ];

        let spec = ConsumerSpec::for_max_deliveries(
            "order",
            watched.iter().map(|c| (c.stream.as_str(), c.durable.as_str())),
        );

        assert_eq!((spec.stream.as_str(), spec.durable.as_str()), ("ADVISORIES", "order-max-deliveries"));
        assert_eq!(
            spec.filter_subjects,
            [
                "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.INVENTORY.order-inventory-rejected",
                "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.PAYMENTS.order-payments-failed",
                "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.PAYMENTS.order-payments-failed-express",
            ]
        );
        let config = spec.config();
        assert_eq!((config.filter_subject.as_str(), config.filter_subjects.len()), ("", 3));
        assert_eq!(config.max_deliver, -1);
        assert!(!spec.drifted(&consumer::IntoConsumerConfig::into_consumer_config(config)));
    }

    #[test]
    fn every_stream_is_bounded_those_orderflow_publishes_to_refuse_when_full_and_the_dlq_outlives_the_events()
    {
        let topology = Topology::orderflow(1);

        for s in &topology.streams {
            let config = s.config();
            assert!(config.max_age > Duration::ZERO && config.max_bytes > 0, "{} is unbounded", s.name);
            let discard =
                if s.name == "ADVISORIES" { stream::DiscardPolicy::Old } else { stream::DiscardPolicy::New };
            assert_eq!(config.discard, discard, "{}", s.name);
        }
        let dlq = topology.streams.iter().find(|s| s.name == "DLQ").unwrap();
        let orders = topology.streams.iter().find(|s| s.name == "ORDERS").unwrap();
        assert!(dlq.max_age > orders.max_age);
        assert_eq!(dlq.max_message_size, -1, "a dead letter is an event plus headers");
        assert!(usize::try_from(orders.max_message_size).unwrap() < MAX_PAYLOAD);
    }

    #[test]
    fn the_redelivery_horizon_outlasts_every_way_a_duplicate_can_arrive() {
        let horizon = redelivery_horizon();
        let schedule = RedeliverySchedule::standard();
        let redelivery: Duration = schedule.delays().iter().sum::<Duration>() + schedule.ack_wait() * 5;

        assert!(horizon >= DUPLICATE_WINDOW);
        assert!(horizon >= EVENT_MAX_AGE);
        assert!(horizon >= redelivery + ADVISORIES_MAX_AGE + DLQ_MAX_AGE);
        assert!(horizon < Duration::from_secs(30 * 24 * 3600), "{horizon:?}: sized by today's constants");
    }

    #[test]
    fn the_advisories_stream_is_bounded_and_does_not_overlap_the_event_streams() {
        let topology = Topology::orderflow(3);
        let advisories = topology.streams.iter().find(|s| s.name == "ADVISORIES").unwrap();

        assert_eq!(advisories.subjects, ["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"]);
        assert_eq!(advisories.replicas, 3);
        assert!(advisories.max_age > Duration::ZERO && advisories.max_age >= advisories.duplicate_window);
        assert!(advisories.max_messages > 0 && advisories.max_bytes > 0);
        let names: Vec<_> = topology.streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ORDERS", "INVENTORY", "PAYMENTS", "DLQ", "ADVISORIES"]);
    }
}
