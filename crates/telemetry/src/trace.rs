//! Distributed tracing: W3C `traceparent` across HTTP and NATS hops, OpenTelemetry export.
//!
//! This is the one module that reads and writes trace context, and every hop has one, whether
//! or not spans are exported:
//!
//! - Where work comes in (an HTTP request, a NATS delivery), [`Ingress`] continues the caller's
//!   `traceparent` when it is valid and starts a new trace otherwise. The hop's span carries the
//!   32-hex trace id as its `trace_id` field, so every log line inside it joins the trace.
//! - Where work goes out, [`publish_traceparent`] (an event) and [`call_traceparent`] (an HTTP
//!   call) give the `traceparent` to send.
//!
//! Spans are ordinary `tracing` spans. When an OpenTelemetry layer is installed (OTLP export
//! because `OTEL_EXPORTER_OTLP_ENDPOINT` is set, or a test's in-memory exporter) they get trace
//! and span ids, the ingress span becomes a child of the caller's span, and an event carries the
//! context of a `"{subject} publish"` producer span. Without such a layer nothing is recorded and
//! nothing is paid for spans: the hop's [`TraceContext`] is a plain value, made from the
//! incoming header or from 24 random bytes, and handed along unchanged (see
//! [`publish_traceparent`] for why unchanged).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Name of the header on HTTP requests and NATS messages.
pub const TRACEPARENT: &str = "traceparent";

/// Whether this process has built an OpenTelemetry layer (`crate::otel_layer`, the only place
/// that builds one, sets it). It only saves work: without a layer, a publish span would be
/// created, formatted and dropped for nothing, and a parent set on a span that nobody records.
/// When it is set but the layer is not the one in use (a subscriber was already installed),
/// every function here still answers correctly, from the [`TraceContext`] it was given.
static OTEL_LAYER_BUILT: AtomicBool = AtomicBool::new(false);

/// Notes that an OpenTelemetry layer exists (called where it is built).
pub(crate) fn note_otel_layer() {
    OTEL_LAYER_BUILT.store(true, Ordering::Relaxed);
}

fn otel_layer_built() -> bool {
    OTEL_LAYER_BUILT.load(Ordering::Relaxed)
}

/// The id shared by every hop of one trace. Displays as 32 lowercase hex digits: the
/// `traceparent`'s second field, the `trace_id` of log lines and of OTLP.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The W3C trace context one hop sends on: the trace, the id of the span it descends from, and
/// whether the trace is sampled. Displays as a version-00 `traceparent`
/// (`00-<trace id>-<parent id>-<flags>`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: TraceId,
    parent_id: [u8; 8],
    sampled: bool,
}

/// A `traceparent` that is not one (W3C Trace Context, level 1: `version-traceid-parentid-flags`
/// in lowercase hex, ids not all zero, version not `ff`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidTraceparent;

impl fmt::Display for InvalidTraceparent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a W3C traceparent (version-traceid-parentid-flags in lowercase hex)")
    }
}

impl std::error::Error for InvalidTraceparent {}

impl TraceContext {
    /// Length of a version-00 `traceparent`.
    const LEN: usize = 55;

    /// Parses a `traceparent` header value. A version above 00 is read as 00 (its first four
    /// fields), as the W3C specification asks; unknown flags are dropped, the sampled flag kept.
    pub fn parse(traceparent: &str) -> Result<Self, InvalidTraceparent> {
        let b = traceparent.trim_matches([' ', '\t']).as_bytes();
        if b.len() < Self::LEN || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(InvalidTraceparent);
        }
        let version = hex_byte(b[0], b[1]).ok_or(InvalidTraceparent)?;
        let exact = b.len() == Self::LEN;
        if version == 0xff || (version == 0 && !exact) || (!exact && b[Self::LEN] != b'-') {
            return Err(InvalidTraceparent);
        }
        let mut trace_id = [0u8; 16];
        decode_hex(&b[3..35], &mut trace_id)?;
        let mut parent_id = [0u8; 8];
        decode_hex(&b[36..52], &mut parent_id)?;
        let flags = hex_byte(b[53], b[54]).ok_or(InvalidTraceparent)?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return Err(InvalidTraceparent);
        }
        Ok(Self { trace_id: TraceId(trace_id), parent_id, sampled: flags & 0x01 == 0x01 })
    }

    /// A new trace, sampled: random trace and parent ids from the operating system's generator.
    pub fn new_trace() -> Self {
        let mut bytes = [0u8; 24];
        if getrandom::fill(&mut bytes).is_err() {
            fallback_random(&mut bytes);
        }
        let mut trace_id = [0u8; 16];
        trace_id.copy_from_slice(&bytes[..16]);
        let mut parent_id = [0u8; 8];
        parent_id.copy_from_slice(&bytes[16..]);
        // All zeros is the one invalid value (a 2^-128 chance); any other value will do.
        if trace_id == [0; 16] {
            trace_id[15] = 1;
        }
        if parent_id == [0; 8] {
            parent_id[7] = 1;
        }
        Self { trace_id: TraceId(trace_id), parent_id, sampled: true }
    }

    /// The trace this context belongs to.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    fn from_otel(cx: &SpanContext) -> Self {
        Self {
            trace_id: TraceId(cx.trace_id().to_bytes()),
            parent_id: cx.span_id().to_bytes(),
            sampled: cx.is_sampled(),
        }
    }
}

impl FromStr for TraceContext {
    type Err = InvalidTraceparent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        write_hex(f, &self.trace_id.0)?;
        f.write_str("-")?;
        write_hex(f, &self.parent_id)?;
        f.write_str(if self.sampled { "-01" } else { "-00" })
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The trace context of work that comes in (an HTTP request, a NATS delivery): the caller's
/// `traceparent` when it is valid, else a new trace.
///
/// ```no_run
/// use orderflow_telemetry::trace::Ingress;
///
/// let ingress = Ingress::new(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
/// let span = tracing::info_span!("process", trace_id = %ingress.trace_id());
/// let context = ingress.attach(&span); // what this hop's events and calls fall back on
/// ```
#[derive(Debug)]
pub struct Ingress<'a> {
    /// The header as received, for the OpenTelemetry propagator (which parses it as it always has).
    raw: Option<&'a str>,
    context: TraceContext,
}

impl<'a> Ingress<'a> {
    /// Continues `traceparent` when it is valid; otherwise starts a new trace.
    pub fn new(traceparent: Option<&'a str>) -> Self {
        let continued = traceparent.and_then(|tp| TraceContext::parse(tp).ok());
        Self { raw: traceparent, context: continued.unwrap_or_else(TraceContext::new_trace) }
    }

    /// The trace id to give the hop's span as its `trace_id` field when the span is created
    /// (declared up front, the field costs nothing more; recorded later, every span field is
    /// formatted again).
    pub fn trace_id(&self) -> TraceId {
        self.context.trace_id
    }

    /// Ties `span`, created with `trace_id = %ingress.trace_id()`, to the trace, and returns the
    /// context the hop's events and calls fall back on.
    ///
    /// With an OpenTelemetry layer, `span` becomes a child of the caller's span (exactly as the
    /// propagator reads the header), and when the layer's trace is another one (no valid
    /// caller: the layer started it) `trace_id` is recorded again so that logs name the trace
    /// that is exported. Without a layer this only returns the context.
    pub fn attach(self, span: &Span) -> TraceContext {
        if !otel_layer_built() {
            return self.context;
        }
        set_parent(span, self.raw);
        let cx = span.context();
        let otel = cx.span();
        let recorded = otel.span_context();
        if !recorded.is_valid() {
            return self.context;
        }
        let recorded = TraceContext::from_otel(recorded);
        if recorded.trace_id != self.context.trace_id {
            span.record("trace_id", tracing::field::display(recorded.trace_id));
        }
        recorded
    }
}

/// The W3C `traceparent` of `span`, when it has a valid OpenTelemetry context.
pub(crate) fn traceparent(span: &Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the remote span described by `traceparent` (ignored when absent or
/// malformed, or when no OpenTelemetry layer is installed).
fn set_parent(span: &Span, traceparent: Option<&str>) {
    let Some(tp) = traceparent else { return };
    let carrier: HashMap<String, String> = HashMap::from([(TRACEPARENT.to_owned(), tp.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The `traceparent` to send with an event published on `subject` from the current span: the
/// context of a new `"{subject} publish"` producer span when an OpenTelemetry layer records
/// spans, else `fallback` — the context of the hop that causes the event — unchanged.
///
/// Unchanged rather than with a new parent id per hop: without a layer no span is recorded, so
/// a new id would name a span that no backend ever receives, and a downstream service that does
/// export would hang its spans off that gap instead of off the last span that exists. Passed on
/// as it is, the context keeps one trace id in every event and log line of an order, keeps a
/// trace that an exporting caller started in one piece, and costs no random numbers per hop.
pub fn publish_traceparent(subject: &str, fallback: &TraceContext) -> String {
    if !otel_layer_built() {
        return fallback.to_string();
    }
    let span = tracing::info_span!(
        "publish",
        otel.name = %format_args!("{subject} publish"),
        otel.kind = "producer",
        messaging.system = "nats",
        messaging.operation.type = "publish",
        messaging.destination.name = %subject,
    );
    traceparent(&span).unwrap_or_else(|| fallback.to_string())
}

/// The `traceparent` to send on an HTTP call made from the current span: the span's own context
/// when an OpenTelemetry layer records it, else `fallback` (the hop's context) unchanged, for the
/// reason given at [`publish_traceparent`].
pub fn call_traceparent(fallback: &TraceContext) -> String {
    if otel_layer_built()
        && let Some(tp) = traceparent(&Span::current())
    {
        return tp;
    }
    fallback.to_string()
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 32];
    for (pair, b) in buf.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
    let len = bytes.len().min(16) * 2;
    // Only ASCII digits were written.
    f.write_str(std::str::from_utf8(&buf[..len]).map_err(|_| fmt::Error)?)
}

/// A lowercase hex digit's value (the W3C format has no uppercase).
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    Some((nibble(hi)? << 4) | nibble(lo)?)
}

fn decode_hex(hex: &[u8], out: &mut [u8]) -> Result<(), InvalidTraceparent> {
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = hex_byte(pair[0], pair[1]).ok_or(InvalidTraceparent)?;
    }
    Ok(())
}

/// Random bytes for when the operating system's generator fails, which it does not on any
/// platform orderflow runs on; a trace id is not a secret, so unique is enough: SipHash under
/// the standard library's per-process random keys, over a counter and the clock.
fn fallback_random(buf: &mut [u8]) {
    use std::hash::{BuildHasher, Hasher};

    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let keys = std::collections::hash_map::RandomState::new();
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    for chunk in buf.chunks_mut(8) {
        let mut h = keys.build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(nanos);
        let word = h.finish().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashSet;
    use std::io;
    use std::sync::{Arc, Mutex};

    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn is_w3c_traceparent(tp: &str) -> bool {
        let parts: Vec<&str> = tp.split('-').collect();
        parts.len() == 4
            && parts[0] == "00"
            && parts[1].len() == 32
            && parts[2].len() == 16
            && parts[3].len() == 2
            && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            && parts[1].bytes().any(|b| b != b'0')
            && parts[2].bytes().any(|b| b != b'0')
    }

    #[test]
    fn a_valid_traceparent_reads_back_as_the_same_text() {
        let cx = TraceContext::parse(VALID).unwrap();

        assert_eq!(cx.to_string(), VALID);
        assert_eq!(cx.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\t"
                .parse::<TraceContext>()
                .unwrap()
                .to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        );
    }

    #[test]
    fn a_later_version_is_read_as_version_00_and_unknown_flags_are_dropped() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-comes-next";

        assert_eq!(TraceContext::parse(later).unwrap().to_string(), VALID);
        assert_eq!(TraceContext::parse(&VALID.replace("-01", "-03")).unwrap().to_string(), VALID);
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        let bad = [
            "",
            "00-abc-def-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",
            "0é-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ];
        for tp in bad {
            assert_eq!(TraceContext::parse(tp), Err(InvalidTraceparent), "{tp:?}");
        }
    }

    #[test]
    fn a_new_trace_is_a_valid_sampled_traceparent_with_fresh_ids() {
        let made: Vec<TraceContext> = (0..100).map(|_| TraceContext::new_trace()).collect();

        for cx in &made {
            let tp = cx.to_string();
            assert!(is_w3c_traceparent(&tp), "{tp}");
            assert!(tp.ends_with("-01"), "{tp}");
            assert_eq!(TraceContext::parse(&tp), Ok(*cx));
        }
        let ids: HashSet<TraceId> = made.iter().map(TraceContext::trace_id).collect();
        assert_eq!(ids.len(), made.len());
    }

    #[test]
    fn the_fallback_generator_gives_different_bytes_every_time() {
        let mut seen = HashSet::new();
        for _ in 0..100 {
            let mut bytes = [0u8; 24];
            fallback_random(&mut bytes);
            assert!(seen.insert(bytes));
        }
    }

    #[test]
    fn without_an_otel_layer_a_hop_continues_its_callers_trace_and_passes_it_on_unchanged() {
        // No subscriber at all here: what a process without OTLP has, as far as spans go.
        let ingress = Ingress::new(Some(VALID));
        let span = tracing::info_span!("http", trace_id = %ingress.trace_id());
        let cx = ingress.attach(&span);

        let published = span.in_scope(|| publish_traceparent("orders.created.v1", &cx));
        let called = span.in_scope(|| call_traceparent(&cx));

        assert_eq!(published, VALID);
        assert_eq!(called, VALID);
    }

    #[test]
    fn without_a_valid_caller_a_hop_starts_a_trace_of_its_own() {
        for caller in [None, Some("00-abc-def-01")] {
            let ingress = Ingress::new(caller);
            let trace_id = ingress.trace_id();
            let cx = ingress.attach(&Span::none());

            assert_eq!(cx.trace_id(), trace_id);
            assert!(is_w3c_traceparent(&publish_traceparent("orders.created.v1", &cx)));
        }
    }

    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Logs {
        fn lines(&self) -> Vec<serde_json::Value> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
        }
    }

    /// Runs `f` under a subscriber with the production JSON log format writing to `logs` and,
    /// when `otel`, the production OpenTelemetry layer (no exporter: spans get ids and are
    /// dropped when they end).
    fn with_subscriber<T>(otel: bool, logs: &Logs, f: impl FnOnce() -> T) -> T {
        let writer = logs.clone();
        let json = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(crate::fields::LeanJsonFields)
            .with_writer(move || writer.clone());
        let provider = SdkTracerProvider::builder().build();
        let subscriber =
            tracing_subscriber::registry().with(json).with(otel.then(|| crate::otel_layer(&provider)));
        tracing::subscriber::with_default(subscriber, f)
    }

    fn with_otel<T>(f: impl FnOnce() -> T) -> T {
        with_subscriber(true, &Logs::default(), f)
    }

    /// A request span as the HTTP layer opens it, attached to `caller`'s trace, and one log line
    /// in it. Returns the context and, with a layer, the span's own `traceparent`.
    fn request(caller: Option<&str>) -> (TraceContext, Option<String>) {
        let ingress = Ingress::new(caller);
        let span = tracing::info_span!("http", service = "order-service", trace_id = %ingress.trace_id());
        let cx = ingress.attach(&span);
        span.in_scope(|| tracing::info!("order accepted"));
        (cx, traceparent(&span))
    }

    fn parts(tp: &str) -> (String, String) {
        let cx = TraceContext::parse(tp).unwrap();
        (cx.trace_id().to_string(), tp[36..52].to_owned())
    }

    #[test]
    fn with_an_otel_layer_the_hop_span_is_a_child_of_the_caller_and_events_carry_a_publish_span() {
        let (ingress_span, published, called) = with_otel(|| {
            let ingress = Ingress::new(Some(VALID));
            let span = tracing::info_span!("http", trace_id = %ingress.trace_id());
            let cx = ingress.attach(&span);
            let published = span.in_scope(|| publish_traceparent("orders.created.v1", &cx));
            let called = span.in_scope(|| call_traceparent(&cx));
            (traceparent(&span).unwrap(), published, called)
        });

        let (trace, caller_span) = parts(VALID);
        let (ingress_trace, ingress_span_id) = parts(&ingress_span);
        let (published_trace, publish_span_id) = parts(&published);
        assert_eq!(ingress_trace, trace, "the request continues the caller's trace");
        assert_ne!(ingress_span_id, caller_span, "in a span of its own");
        assert_eq!(published_trace, trace);
        assert_ne!(publish_span_id, ingress_span_id, "the event carries its publish span");
        assert_ne!(publish_span_id, caller_span);
        assert_eq!(called, ingress_span, "a call is made from the request's span");
    }

    #[test]
    fn log_lines_in_a_hop_carry_its_trace_id_without_an_otel_layer() {
        let logs = Logs::default();

        let (cx, _) = with_subscriber(false, &logs, || request(Some(VALID)));
        let (fresh, _) = with_subscriber(false, &logs, || request(None));

        let lines = logs.lines();
        assert_eq!(cx.to_string(), VALID);
        assert_eq!(lines[0]["span"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(lines[1]["span"]["trace_id"], fresh.trace_id().to_string());
        assert_eq!(lines[1]["span"]["service"], "order-service");
    }

    #[test]
    fn with_an_otel_layer_log_lines_carry_the_trace_id_of_the_exported_trace() {
        let logs = Logs::default();

        // No caller: the layer starts the trace. A header only the propagator reads ("abc" is
        // trace 0…0abc to it, nothing to the W3C format): it is continued, as it always was.
        let (fresh, fresh_span) = with_subscriber(true, &logs, || request(None));
        let (lax, lax_span) = with_subscriber(true, &logs, || request(Some("00-abc-def-01")));
        let (valid, valid_span) = with_subscriber(true, &logs, || request(Some(VALID)));

        let lines = logs.lines();
        for ((cx, span_tp), line) in
            [(fresh, fresh_span), (lax, lax_span), (valid, valid_span)].iter().zip(&lines)
        {
            let span_tp = span_tp.as_deref().unwrap();
            assert_eq!(&cx.to_string(), span_tp, "the hop falls back on its own span");
            assert_eq!(line["span"]["trace_id"], parts(span_tp).0, "{line}");
        }
        assert_eq!(lines[1]["span"]["trace_id"], "00000000000000000000000000000abc");
        assert_eq!(lines[2]["span"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
