//! Dead-letter administration: list, show, replay and purge what the consumer runtime put in the
//! `DLQ` stream (format in [`crate::dlq`]).
//!
//! Reading never creates a consumer: dead letters are read one by one with direct gets (or
//! leader gets when the stream does not allow direct access), each request asking for "the next
//! message at or after this sequence on this subject filter", so the server skips what the
//! subject filter excludes. Reason, consumer and time filters are applied to the headers read.
//! A listing stops at the DLQ's last sequence as it was when the listing started, so replaying
//! what a listing found can never chase the dead letters the replay itself produces.
//!
//! A replay republishes the dead letter to its original subject with the original payload and
//! headers, except:
//! - `Nats-Msg-Id` is `replay:<dlq seq>:<original msg id>`: new, so JetStream does not drop it as
//!   a duplicate of the original event (still inside the duplicate window if the event is young),
//!   and deterministic, so a replay retried inside the window (the publish was acknowledged but
//!   the dead letter could not be removed) is stored once;
//! - the dead-letter headers (`Orderflow-Dlq-*`, `Orderflow-Original-*`, `Orderflow-Stream-Seq`,
//!   `Orderflow-Consumer`, `Orderflow-Delivery-Count`) and any other JetStream `Nats-*` header
//!   are removed;
//! - `Orderflow-Replay-Of: <dlq seq>` is added, and `Nats-Expected-Stream` names the stream the
//!   event came from, so a replay lands there or fails.
//!
//! The dead letter is deleted only after the PubAck: a failed publish leaves it in place. The
//! event keeps its CloudEvents id, and every handler records that id in its inbox in the same
//! transaction as its effect, so replaying an event that some handler already processed (every
//! consumer of the subject receives the replay, not only the one that gave up; or the event was
//! replayed twice) is a no-op for that handler. [`replay_matching`] publishes an event once even
//! when several consumers dead-lettered it, and removes all of those dead letters.
//!
//! ```no_run
//! # async fn f(js: async_nats::jetstream::Context) -> Result<(), orderflow_messaging::dlq_admin::DlqAdminError> {
//! use orderflow_messaging::dlq_admin::{self, Filter};
//! use orderflow_messaging::DlqReason;
//!
//! let filter = Filter { reason: Some(DlqReason::MaxDeliveries), ..Filter::default() };
//! for letter in dlq_admin::list(&js, &filter).await? {
//!     println!("{} {} {:?}", letter.seq, letter.original_subject, letter.error);
//! }
//! for outcome in dlq_admin::replay_matching(&js, &filter).await? {
//!     if let Err(e) = outcome.result {
//!         eprintln!("dead letter {} kept: {e}", outcome.seq);
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::StreamMessage, stream::Stream};
use bytes::Bytes;
use orderflow_events::subjects::STREAM_DLQ;
use time::OffsetDateTime;

use crate::dlq::{DLQ_PREFIX, DlqReason};
use crate::{BoxError, headers};

/// Prefix of the `Nats-Msg-Id` of a replayed message.
pub(crate) const REPLAY_ID_PREFIX: &str = "replay:";

/// Headers a direct get adds to the stored message; they are not part of the dead letter.
const DIRECT_GET_HEADERS: [&str; 6] = [
    "Nats-Stream",
    "Nats-Sequence",
    "Nats-Time-Stamp",
    "Nats-Subject",
    "Nats-Num-Pending",
    "Nats-Last-Sequence",
];

/// Dead-letter headers a replay removes (besides every `Orderflow-Dlq-*` and
/// `Orderflow-Original-*` header).
const DEAD_LETTER_HEADERS: [&str; 4] =
    [headers::STREAM_SEQ, headers::CONSUMER, headers::DELIVERY_COUNT, headers::REPLAY_OF];

/// JetStream's header naming the stream a publish must land in.
const EXPECTED_STREAM: &str = "Nats-Expected-Stream";

/// Why a DLQ operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DlqAdminError {
    /// The filter cannot be turned into a subject filter.
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    /// The DLQ stream could not be opened (missing, or NATS unreachable).
    #[error("cannot open the {stream} stream")]
    Stream {
        /// The stream name.
        stream: String,
        /// The client's error.
        #[source]
        source: BoxError,
    },
    /// No dead letter has this sequence (never did, or it was replayed or purged).
    #[error("no dead letter with sequence {seq}")]
    NotFound {
        /// The DLQ sequence asked for.
        seq: u64,
    },
    /// Reading the DLQ failed.
    #[error("reading the DLQ at sequence {seq}")]
    Read {
        /// Where the read started.
        seq: u64,
        /// The client's error.
        #[source]
        source: BoxError,
    },
    /// No durable consumer of the original stream subscribes to the original subject (a
    /// version every service retired from `events.consume`): replayed, the event would be
    /// stored and read by nobody, so the dead letter stays in the DLQ.
    #[error(
        "no consumer of {stream} subscribes to {subject} (a retired event version?); dead letter {seq} stays in the DLQ — put the version back in events.consume, then replay"
    )]
    Unsubscribed {
        /// The DLQ sequence.
        seq: u64,
        /// The original stream.
        stream: String,
        /// The original subject.
        subject: String,
    },
    /// The replay was not acknowledged; the dead letter stays in the DLQ.
    #[error("replaying dead letter {seq} to {subject} failed; it stays in the DLQ")]
    Publish {
        /// The DLQ sequence.
        seq: u64,
        /// The original subject.
        subject: String,
        /// The publish error.
        #[source]
        source: jetstream::context::PublishError,
    },
    /// The replay was acknowledged but the dead letter could not be deleted. Replaying it again
    /// inside the duplicate window stores nothing twice; later, handlers' inboxes make it a no-op.
    #[error(
        "dead letter {seq} was replayed to {subject} but is still in the DLQ (replaying it again is safe)"
    )]
    Delete {
        /// The DLQ sequence.
        seq: u64,
        /// The original subject.
        subject: String,
        /// The delete error.
        #[source]
        source: BoxError,
    },
    /// Deleting or purging dead letters failed.
    #[error("purging the DLQ")]
    Purge {
        /// The client's error.
        #[source]
        source: BoxError,
    },
}

/// Which dead letters an operation applies to. Every field narrows; the default matches all.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    /// The original subject, exact or with NATS wildcards (`orders.created.v1`, `orders.>`,
    /// `*.created.v1`); evaluated by the server on the DLQ subject (`dlq.` + this).
    pub subject: Option<String>,
    /// Only this reason.
    pub reason: Option<DlqReason>,
    /// Only dead letters stored at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only dead letters stored at or before this time.
    pub until: Option<OffsetDateTime>,
    /// Only those dead-lettered by this durable consumer (`inventory-orders-created`).
    pub consumer: Option<String>,
    /// At most this many (the oldest first).
    pub limit: Option<usize>,
}

impl Filter {
    /// Matches every dead letter.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Only the subject narrows it, so the server can do the whole selection.
    fn is_subject_only(&self) -> bool {
        Self { subject: None, ..self.clone() }.is_empty()
    }

    /// The subject filter on the DLQ stream.
    pub(crate) fn dlq_subject(&self) -> Result<String, DlqAdminError> {
        let Some(subject) = self.subject.as_deref() else { return Ok(format!("{DLQ_PREFIX}>")) };
        let subject = subject.trim();
        // A `dlq.` prefix is tolerated: no original subject can start with it.
        let subject = subject.strip_prefix(DLQ_PREFIX).unwrap_or(subject);
        validate_subject_filter(subject)?;
        Ok(format!("{DLQ_PREFIX}{subject}"))
    }

    /// The header and time conditions (the subject is matched by the server).
    fn matches(&self, r: &DeadLetterRecord) -> bool {
        self.reason.is_none_or(|want| r.reason == Some(want))
            && self.consumer.as_deref().is_none_or(|want| r.consumer.as_deref() == Some(want))
            && self.since.is_none_or(|t| r.time >= t)
            && self.until.is_none_or(|t| r.time <= t)
    }
}

fn validate_subject_filter(s: &str) -> Result<(), DlqAdminError> {
    let invalid = |why: &str| Err(DlqAdminError::InvalidFilter(format!("subject {s:?} {why}")));
    if s.is_empty() {
        return invalid("is empty");
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("contains whitespace");
    }
    let tokens: Vec<&str> = s.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return invalid("has an empty token");
        }
        if *token == ">" && i + 1 != tokens.len() {
            return invalid("has `>` before its last token");
        }
        if token.len() > 1 && (token.contains('*') || token.contains('>')) {
            return invalid("uses a wildcard inside a token");
        }
    }
    Ok(())
}

/// One dead letter as stored in the DLQ, with its headers decoded.
#[derive(Clone, Debug)]
pub struct DeadLetterRecord {
    /// Its sequence in the DLQ stream: the id to show, replay or purge it by.
    pub seq: u64,
    /// Its DLQ subject (`dlq.orders.created.v1`).
    pub subject: String,
    /// When the DLQ stored it.
    pub time: OffsetDateTime,
    /// The subject it was published on (`Orderflow-Original-Subject`, else the DLQ subject
    /// without `dlq.`).
    pub original_subject: String,
    /// The stream it came from (`Orderflow-Original-Stream`).
    pub original_stream: Option<String>,
    /// Its sequence there (`Orderflow-Stream-Seq`).
    pub stream_seq: Option<u64>,
    /// The durable consumer that gave up (`Orderflow-Consumer`).
    pub consumer: Option<String>,
    /// Why (`Orderflow-Dlq-Reason`); `None` when missing or not a known reason (the raw value
    /// stays in `headers`).
    pub reason: Option<DlqReason>,
    /// The error that dead-lettered it (`Orderflow-Dlq-Error`).
    pub error: Option<String>,
    /// Deliveries before it was dead-lettered (`Orderflow-Delivery-Count`).
    pub delivery_count: Option<i64>,
    /// The original `Nats-Msg-Id` (`Orderflow-Original-Msg-Id`): the event id.
    pub original_msg_id: Option<String>,
    /// The envelope's `type`, when the payload is a JSON object with one.
    pub event_type: Option<String>,
    /// The envelope's `id`.
    pub event_id: Option<String>,
    /// The envelope's `subject`: the order id.
    pub order_id: Option<String>,
    /// The envelope's `correlationid`, else the `X-Correlation-ID` header.
    pub correlation_id: Option<String>,
    /// Every header of the dead letter.
    pub(crate) headers: HeaderMap,
    /// The original payload, unchanged.
    pub payload: Bytes,
}

impl DeadLetterRecord {
    /// Decodes a message read from the DLQ stream. Never fails: whatever is missing or
    /// undecodable is `None`.
    pub(crate) fn from_stream_message(msg: StreamMessage) -> Self {
        let mut headers = HeaderMap::new();
        for (name, values) in msg.headers.iter() {
            let name: &str = name.as_ref();
            if DIRECT_GET_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                continue;
            }
            for v in values {
                headers.append(name, v.as_str());
            }
        }
        let text = |name: &str| headers::get(Some(&headers), name).map(str::to_owned);
        let subject = msg.subject.to_string();
        let original_subject = text(headers::ORIGINAL_SUBJECT)
            .unwrap_or_else(|| subject.strip_prefix(DLQ_PREFIX).unwrap_or(&subject).to_owned());
        let envelope = EnvelopeFields::read(&msg.payload);
        Self {
            seq: msg.sequence,
            time: msg.time,
            original_subject,
            original_stream: text(headers::ORIGINAL_STREAM),
            stream_seq: text(headers::STREAM_SEQ).and_then(|s| s.parse().ok()),
            consumer: text(headers::CONSUMER),
            reason: text(headers::DLQ_REASON).and_then(|s| s.parse().ok()),
            error: text(headers::DLQ_ERROR),
            delivery_count: text(headers::DELIVERY_COUNT).and_then(|s| s.parse().ok()),
            original_msg_id: text(headers::ORIGINAL_MSG_ID),
            event_type: envelope.event_type,
            event_id: envelope.id,
            order_id: envelope.order_id,
            correlation_id: envelope.correlation_id.or_else(|| text(headers::CORRELATION_ID)),
            subject,
            headers,
            payload: msg.payload,
        }
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        headers::get(Some(&self.headers), name)
    }

    /// Every header value, sorted by name (for display).
    pub fn sorted_headers(&self) -> Vec<(String, String)> {
        let sorted: BTreeMap<String, Vec<String>> = self
            .headers
            .iter()
            .map(|(n, vs)| (n.to_string(), vs.iter().map(|v| v.as_str().to_owned()).collect()))
            .collect();
        sorted.into_iter().flat_map(|(n, vs)| vs.into_iter().map(move |v| (n.clone(), v))).collect()
    }

    /// The `Nats-Msg-Id` of its replay: `replay:<dlq seq>:<original msg id>` (or
    /// `replay:<dlq seq>` without an original id). Deterministic, so a retried replay is
    /// de-duplicated by the target stream.
    pub(crate) fn replay_message_id(&self) -> String {
        match &self.original_msg_id {
            Some(id) => format!("{REPLAY_ID_PREFIX}{}:{id}", self.seq),
            None => format!("{REPLAY_ID_PREFIX}{}", self.seq),
        }
    }

    /// The headers of its replay: the original ones without the dead-letter headers and
    /// JetStream's `Nats-*` headers, plus a new `Nats-Msg-Id`, `Orderflow-Replay-Of` and, when
    /// the original stream is known, `Nats-Expected-Stream`.
    pub fn replay_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, values) in self.headers.iter() {
            let name: &str = name.as_ref();
            if is_dead_letter_header(name) {
                continue;
            }
            for v in values {
                h.append(name, v.as_str());
            }
        }
        h.insert(headers::NATS_MSG_ID, self.replay_message_id().as_str());
        h.insert(headers::REPLAY_OF, self.seq.to_string().as_str());
        if let Some(stream) = &self.original_stream {
            h.insert(EXPECTED_STREAM, stream.as_str());
        }
        h
    }
}

/// Whether a durable consumer of `stream` receives `subject`. An error (the stream or its
/// consumers unreadable) is not an answer: the caller replays as it would without the check.
async fn subscribed(js: &jetstream::Context, stream: &str, subject: &str) -> Result<bool, BoxError> {
    use futures_util::StreamExt as _;
    let stream = js.get_stream(stream).await?;
    let mut consumers = stream.consumers();
    while let Some(info) = consumers.next().await {
        let config = info?.config;
        let mut filters = config.filter_subjects;
        if !config.filter_subject.is_empty() {
            filters.push(config.filter_subject);
        }
        if filters.is_empty() || filters.iter().any(|f| subject_matches(f, subject)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// NATS subject matching: `*` is one token, `>` one or more trailing tokens.
fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for token in filter.split('.') {
        match (token, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (literal, Some(s)) if literal == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

fn is_dead_letter_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("orderflow-dlq-")
        || lower.starts_with("orderflow-original-")
        || lower.starts_with("nats-")
        || DEAD_LETTER_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// What the envelope says about itself, read leniently: a dead letter may be anything.
#[derive(Default)]
struct EnvelopeFields {
    event_type: Option<String>,
    id: Option<String>,
    order_id: Option<String>,
    correlation_id: Option<String>,
}

impl EnvelopeFields {
    fn read(payload: &[u8]) -> Self {
        if let Ok(head) = orderflow_events::peek(payload) {
            return Self {
                event_type: Some(head.kind.at(head.version).type_name().to_owned()),
                id: head.id,
                order_id: head.subject,
                correlation_id: head.correlation_id,
            };
        }
        // Unknown types and schema-invalid envelopes still usually say what they are.
        let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(payload) else {
            return Self::default();
        };
        let text = |key: &str| map.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        Self {
            event_type: text("type"),
            id: text("id"),
            order_id: text("subject"),
            correlation_id: text("correlationid"),
        }
    }
}

/// A dead letter that was republished and removed from the DLQ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayed {
    /// Its former DLQ sequence.
    pub seq: u64,
    /// Where it was republished.
    pub original_subject: String,
    /// The `Nats-Msg-Id` it was republished with.
    pub message_id: String,
    /// The stream that acknowledged it.
    pub stream: String,
    /// Its new sequence there.
    pub stream_seq: u64,
    /// The stream had already stored this replay (a retried replay inside the duplicate window).
    pub duplicate: bool,
}

/// How the replay of one dead letter went, in [`replay_matching`].
#[derive(Debug)]
pub struct ReplayOutcome {
    /// The DLQ sequence.
    pub seq: u64,
    /// The subject it was (to be) republished on.
    pub original_subject: String,
    /// Replayed, or why not ([`DlqAdminError::Publish`]: still in the DLQ;
    /// [`DlqAdminError::Delete`]: republished but still in the DLQ).
    pub result: Result<Replayed, DlqAdminError>,
}

/// The DLQ stream and what a read of it needs.
struct Dlq {
    stream: Stream,
    direct: bool,
    first_seq: u64,
    last_seq: u64,
    messages: u64,
    /// Whether a consumer receives `(stream, subject)`, asked once per command: a replay of
    /// many dead letters of one subject lists the stream's consumers once.
    subscribed: std::sync::Mutex<HashMap<(String, String), bool>>,
}

impl Dlq {
    async fn open(js: &jetstream::Context) -> Result<Self, DlqAdminError> {
        let stream = js
            .get_stream(STREAM_DLQ)
            .await
            .map_err(|e| DlqAdminError::Stream { stream: STREAM_DLQ.to_owned(), source: e.into() })?;
        let info = stream.cached_info();
        Ok(Self {
            direct: info.config.allow_direct,
            first_seq: info.state.first_sequence,
            last_seq: info.state.last_sequence,
            messages: info.state.messages,
            stream,
            subscribed: std::sync::Mutex::default(),
        })
    }

    /// The first message at or after `seq` on `filter`, if any.
    async fn next(&self, seq: u64, filter: &str) -> Result<Option<StreamMessage>, DlqAdminError> {
        let read = |e: BoxError| DlqAdminError::Read { seq, source: e };
        if self.direct {
            match self.stream.direct_get_builder().sequence(seq).next_by_subject(filter).send().await {
                Ok(m) => Ok(Some(m)),
                Err(e) if e.kind() == jetstream::stream::DirectGetErrorKind::NotFound => Ok(None),
                Err(e) => Err(read(e.into())),
            }
        } else {
            match self.stream.raw_message_builder().sequence(seq).next_by_subject(filter).send().await {
                Ok(m) => Ok(Some(m)),
                Err(e) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => Ok(None),
                Err(e) => Err(read(e.into())),
            }
        }
    }

    /// The message at exactly `seq`, read from the stream leader (read-after-write consistent).
    async fn get(&self, seq: u64) -> Result<Option<StreamMessage>, DlqAdminError> {
        match self.stream.get_raw_message(seq).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(DlqAdminError::Read { seq, source: e.into() }),
        }
    }

    /// The first sequence whose message on `filter` was stored at or after `since`, by binary
    /// search (stored times follow stream order).
    async fn first_since(&self, filter: &str, since: OffsetDateTime) -> Result<u64, DlqAdminError> {
        let (mut lo, mut hi) = (self.first_seq, self.last_seq.saturating_add(1));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.next(mid, filter).await? {
                Some(m) if m.time < since => lo = m.sequence.saturating_add(1).min(hi),
                _ => hi = mid,
            }
        }
        Ok(lo)
    }

    /// Every dead letter matching `filter`, oldest first, up to the last sequence at open time.
    async fn list(&self, filter: &Filter) -> Result<Vec<DeadLetterRecord>, DlqAdminError> {
        let subject = filter.dlq_subject()?;
        let mut out = Vec::new();
        if self.messages == 0 || filter.limit == Some(0) {
            return Ok(out);
        }
        let mut seq = match filter.since {
            Some(since) => self.first_since(&subject, since).await?,
            None => self.first_seq,
        };
        while seq <= self.last_seq {
            let Some(msg) = self.next(seq, &subject).await? else { break };
            if msg.sequence > self.last_seq {
                break;
            }
            seq = msg.sequence.saturating_add(1);
            let record = DeadLetterRecord::from_stream_message(msg);
            if filter.until.is_some_and(|until| record.time > until) {
                break;
            }
            if filter.matches(&record) {
                out.push(record);
                if filter.limit.is_some_and(|n| out.len() >= n) {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Republishes the event of `letters` once (they all hold the same event: one dead letter
    /// per consumer that gave up on it), then deletes each of them. One outcome per letter.
    async fn replay_event(
        &self,
        js: &jetstream::Context,
        letters: &[DeadLetterRecord],
    ) -> Vec<ReplayOutcome> {
        let Some(first) = letters.first() else { return Vec::new() };
        let subject = first.original_subject.clone();
        if let Some(stream) = &first.original_stream
            && let Ok(false) = self.is_subscribed(js, stream, &subject).await
        {
            return letters
                .iter()
                .map(|letter| ReplayOutcome {
                    seq: letter.seq,
                    original_subject: subject.clone(),
                    result: Err(DlqAdminError::Unsubscribed {
                        seq: letter.seq,
                        stream: stream.clone(),
                        subject: subject.clone(),
                    }),
                })
                .collect();
        }
        let ack = match js
            .publish_with_headers(subject.clone(), first.replay_headers(), first.payload.clone())
            .await
        {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        let mut outcomes = Vec::with_capacity(letters.len());
        let error = match ack {
            Ok(ack) => {
                for letter in letters {
                    // Only now, with the replay stored, may the dead letter go.
                    let result = match self.delete(letter.seq).await {
                        Ok(()) => Ok(Replayed {
                            seq: letter.seq,
                            original_subject: subject.clone(),
                            message_id: first.replay_message_id(),
                            stream: ack.stream.clone(),
                            stream_seq: ack.sequence,
                            duplicate: ack.duplicate,
                        }),
                        Err(source) => {
                            Err(DlqAdminError::Delete { seq: letter.seq, subject: subject.clone(), source })
                        }
                    };
                    outcomes.push(ReplayOutcome {
                        seq: letter.seq,
                        original_subject: subject.clone(),
                        result,
                    });
                }
                return outcomes;
            }
            Err(e) => e,
        };
        let kind = error.kind();
        let mut error = Some(error);
        for letter in letters {
            let source = error.take().unwrap_or_else(|| jetstream::context::PublishError::new(kind));
            outcomes.push(ReplayOutcome {
                seq: letter.seq,
                original_subject: subject.clone(),
                result: Err(DlqAdminError::Publish { seq: letter.seq, subject: subject.clone(), source }),
            });
        }
        outcomes
    }

    /// [`subscribed`], remembered for the rest of this command.
    async fn is_subscribed(
        &self,
        js: &jetstream::Context,
        stream: &str,
        subject: &str,
    ) -> Result<bool, BoxError> {
        let key = (stream.to_owned(), subject.to_owned());
        let cached =
            self.subscribed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key).copied();
        if let Some(known) = cached {
            return Ok(known);
        }
        let known = subscribed(js, stream, subject).await?;
        self.subscribed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, known);
        Ok(known)
    }

    /// Deletes one message; a message that is already gone counts as deleted.
    async fn delete(&self, seq: u64) -> Result<(), BoxError> {
        let error: BoxError = match self.stream.delete_message(seq).await {
            Ok(true) => return Ok(()),
            Ok(false) => format!("the server did not delete message {seq}").into(),
            Err(e) => e.into(),
        };
        match self.get(seq).await {
            Ok(None) => Ok(()),
            _ => Err(error),
        }
    }
}

/// Dead letters matching `filter`, oldest first.
pub async fn list(js: &jetstream::Context, filter: &Filter) -> Result<Vec<DeadLetterRecord>, DlqAdminError> {
    Dlq::open(js).await?.list(filter).await
}

/// The dead letter with DLQ sequence `seq`.
pub async fn get(js: &jetstream::Context, seq: u64) -> Result<DeadLetterRecord, DlqAdminError> {
    let dlq = Dlq::open(js).await?;
    let msg = dlq.get(seq).await?.ok_or(DlqAdminError::NotFound { seq })?;
    Ok(DeadLetterRecord::from_stream_message(msg))
}

/// Replays the dead letter with DLQ sequence `seq` (see the [module docs](self)): republishes
/// it to its original subject, waits for the PubAck, then deletes it from the DLQ.
pub async fn replay(js: &jetstream::Context, seq: u64) -> Result<Replayed, DlqAdminError> {
    let dlq = Dlq::open(js).await?;
    let msg = dlq.get(seq).await?.ok_or(DlqAdminError::NotFound { seq })?;
    let mut outcomes = dlq.replay_event(js, &[DeadLetterRecord::from_stream_message(msg)]).await;
    outcomes.pop().map_or(Err(DlqAdminError::NotFound { seq }), |o| o.result)
}

/// Replays every dead letter matching `filter`, oldest first; a failure is reported in its
/// outcome and does not stop the others. Fails as a whole only when the DLQ cannot be read.
///
/// Dead letters of the same event (same original subject and message id: several consumers
/// gave up on it) are replayed by ONE publish, which every consumer of the subject receives, and
/// are all deleted after its PubAck; each gets its own outcome. Publishing once per dead letter
/// would hand each consumer the event once per dead letter, and if it still fails, multiply
/// the dead letters.
pub async fn replay_matching(
    js: &jetstream::Context,
    filter: &Filter,
) -> Result<Vec<ReplayOutcome>, DlqAdminError> {
    let dlq = Dlq::open(js).await?;
    let mut events: Vec<Vec<DeadLetterRecord>> = Vec::new();
    let mut by_event: HashMap<(String, String), usize> = HashMap::new();
    for record in dlq.list(filter).await? {
        let Some(id) = record.original_msg_id.clone() else {
            events.push(vec![record]);
            continue;
        };
        match by_event.entry((record.original_subject.clone(), id)) {
            Entry::Occupied(e) => events[*e.get()].push(record),
            Entry::Vacant(e) => {
                e.insert(events.len());
                events.push(vec![record]);
            }
        }
    }
    let mut outcomes = Vec::new();
    for letters in &events {
        outcomes.extend(dlq.replay_event(js, letters).await);
    }
    outcomes.sort_by_key(|o| o.seq);
    Ok(outcomes)
}

/// Deletes the dead letters matching `filter` and returns how many went. An empty filter purges
/// the whole DLQ. Only what was in the DLQ when the call started is purged.
pub async fn purge(js: &jetstream::Context, filter: &Filter) -> Result<u64, DlqAdminError> {
    let dlq = Dlq::open(js).await?;
    if dlq.messages == 0 {
        return Ok(0);
    }
    if filter.is_subject_only() {
        // The server does it in one request; `sequence` keeps anything newer.
        let subject = filter.dlq_subject()?;
        let purge = |e: jetstream::stream::PurgeError| DlqAdminError::Purge { source: e.into() };
        let response = dlq
            .stream
            .purge()
            .filter(subject)
            .sequence(dlq.last_seq.saturating_add(1))
            .await
            .map_err(purge)?;
        return Ok(response.purged);
    }
    let mut purged = 0;
    for record in dlq.list(filter).await? {
        dlq.delete(record.seq).await.map_err(|source| DlqAdminError::Purge { source })?;
        purged += 1;
    }
    Ok(purged)
}

#[cfg(test)]
mod tests {

    #[test]
    fn subjects_match_nats_wildcards() {
        assert!(subject_matches("orders.created.v1", "orders.created.v1"));
        assert!(subject_matches("orders.*.v1", "orders.created.v1"));
        assert!(subject_matches("orders.>", "orders.created.v1.express"));
        assert!(!subject_matches("orders.created.v2", "orders.created.v1"));
        assert!(!subject_matches("orders.created.v1", "orders.created.v1.express"));
        assert!(!subject_matches("orders.created.v1.express", "orders.created.v1"));
        assert!(!subject_matches("orders.>", "orders"));
    }

    use super::*;

    #[test]
    fn subject_filters_are_prefixed_and_validated() {
        let f = |s: &str| Filter { subject: Some(s.to_owned()), ..Filter::default() }.dlq_subject();
        assert_eq!(Filter::default().dlq_subject().ok().as_deref(), Some("dlq.>"));
        assert_eq!(f("orders.created.v1").ok().as_deref(), Some("dlq.orders.created.v1"));
        assert_eq!(f("orders.>").ok().as_deref(), Some("dlq.orders.>"));
        assert_eq!(f("*.created.v1").ok().as_deref(), Some("dlq.*.created.v1"));
        assert_eq!(f("dlq.payments.>").ok().as_deref(), Some("dlq.payments.>"));
        for bad in ["", "orders..v1", "orders.>.v1", "orders.cre*", "orders created"] {
            assert!(matches!(f(bad), Err(DlqAdminError::InvalidFilter(_))), "{bad:?}");
        }
    }

    #[test]
    fn only_an_all_default_filter_is_empty() {
        assert!(Filter::default().is_empty());
        assert!(!Filter { limit: Some(1), ..Filter::default() }.is_empty());
        assert!(Filter { subject: Some("orders.>".into()), ..Filter::default() }.is_subject_only());
        assert!(
            !Filter {
                subject: Some("orders.>".into()),
                reason: Some(DlqReason::Malformed),
                ..Filter::default()
            }
            .is_subject_only()
        );
    }

    #[test]
    fn a_replay_drops_the_dead_letter_headers_and_keeps_the_rest() {
        let letter = crate::dlq::DeadLetter {
            reason: DlqReason::MaxDeliveries,
            error: "boom".into(),
            original_subject: "orders.created.v1".into(),
            stream: "ORDERS".into(),
            stream_seq: 7,
            consumer: "inventory-orders-created".into(),
            delivered: 5,
            headers: Some({
                let mut h = HeaderMap::new();
                h.insert(headers::NATS_MSG_ID, "event-1");
                h.insert(headers::CORRELATION_ID, "corr-1");
                h.insert(headers::TRACEPARENT, "00-abc-def-01");
                h
            }),
            payload: Bytes::from_static(b"{}"),
        };
        let mut stored = letter.dlq_headers();
        stored.insert("Nats-Sequence", "42");
        let record = DeadLetterRecord::from_stream_message(StreamMessage {
            subject: letter.subject().into(),
            sequence: 42,
            headers: stored,
            payload: letter.payload.clone(),
            time: OffsetDateTime::UNIX_EPOCH,
        });

        let h = record.replay_headers();

        let names: std::collections::BTreeSet<String> = h.iter().map(|(n, _)| n.to_string()).collect();
        let want = [
            EXPECTED_STREAM,
            headers::NATS_MSG_ID,
            headers::REPLAY_OF,
            headers::CORRELATION_ID,
            headers::TRACEPARENT,
        ];
        assert_eq!(names, want.into_iter().map(str::to_owned).collect());
        assert_eq!(headers::get(Some(&h), headers::NATS_MSG_ID), Some("replay:42:event-1"));
        assert_eq!(headers::get(Some(&h), headers::REPLAY_OF), Some("42"));
        assert_eq!(headers::get(Some(&h), EXPECTED_STREAM), Some("ORDERS"));
        assert_eq!(record.reason, Some(DlqReason::MaxDeliveries));
        assert_eq!((record.stream_seq, record.delivery_count), (Some(7), Some(5)));
        assert!(
            record.header("Nats-Sequence").is_none(),
            "direct-get metadata is not a header of the letter"
        );
    }
}
