//! Logs, metrics and traces for every orderflow process.
//!
//! One call, [`init`], installs a `tracing` subscriber: JSON lines when stdout is not a terminal or
//! `LOG_FORMAT=json`, human-readable output on a terminal or with `LOG_FORMAT=pretty`; the level
//! comes from `RUST_LOG` (default `info`); spans are exported over OTLP/HTTP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set. W3C trace context is carried across every hop, and
//! named in log lines as `trace_id`, with or without export ([`trace`]). [`metrics`] owns the
//! Prometheus registry. It owns no business logic and never panics when a subscriber is already
//! installed (tests call it many times).

mod fields;
pub mod metrics;
pub mod trace;

use std::io::IsTerminal;
use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Output format of the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable, coloured when on a terminal.
    Pretty,
}

impl LogFormat {
    /// `LOG_FORMAT` (`json` | `pretty`), else JSON unless stdout is a terminal.
    pub(crate) fn from_env() -> Self {
        match std::env::var("LOG_FORMAT").ok().as_deref() {
            Some("json") => Self::Json,
            Some("pretty" | "text") => Self::Pretty,
            _ if std::io::stdout().is_terminal() => Self::Pretty,
            _ => Self::Json,
        }
    }
}

/// Installs the global subscriber once; later calls are no-ops. Returns whether this call
/// installed it. Exports spans over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
pub fn init(default_directive: &str) -> bool {
    init_with(LogFormat::from_env(), default_directive)
}

/// Like [`init`] with an explicit format.
pub(crate) fn init_with(format: LogFormat, default_directive: &str) -> bool {
    init_writing_to(format, default_directive, std::io::stdout)
}

/// Like `init_with`, writing the log lines to `writer` instead of stdout (a file, or
/// `std::io::sink` for a test that needs the production subscriber but not its output).
pub fn init_writing_to<W>(format: LogFormat, default_directive: &str, writer: W) -> bool
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_directive));
    let fmt = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(true)
            .fmt_fields(fields::LeanJsonFields)
            .with_writer(writer)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_target(false).with_writer(writer).boxed(),
    };
    let otel = otlp_provider().map(|provider| otel_layer(&provider));
    tracing_subscriber::registry().with(fmt.with_filter(filter)).with(otel).try_init().is_ok()
}

/// For tests: logs to the test writer (captured per test), filtered by `RUST_LOG` (default
/// `warn`). Safe to call from every test.
pub fn init_for_tests() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_test_writer().with_filter(filter))
        .try_init();
}

/// For tests: every span at info level or above is exported to `exporter` as it ends (e.g. an
/// in-memory exporter the test then inspects), and logs are written as JSON lines — formatted
/// exactly as in production, at info level and at debug for the services' own crates (where the
/// happy path's per-message lines are) — to `logs`.
pub fn init_for_tests_capturing<E, W>(exporter: E, logs: W) -> bool
where
    E: SpanExporter + 'static,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let provider =
        SdkTracerProvider::builder().with_simple_exporter(exporter).with_resource(resource()).build();
    let otel = otel_layer(&provider);
    let _ = PROVIDER.set(provider);
    tracing_subscriber::registry().with(test_json_layer(logs)).with(otel).try_init().is_ok()
}

/// For tests: logs written as JSON lines to `logs`, exactly as [`init_for_tests_capturing`]
/// writes them, and no OpenTelemetry layer — what a process without
/// `OTEL_EXPORTER_OTLP_ENDPOINT` has.
pub fn init_for_tests_logging<W>(logs: W) -> bool
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::registry().with(test_json_layer(logs)).try_init().is_ok()
}

/// The production JSON format at info level, and at debug for the services' own crates (where
/// the happy path's per-message lines are), whatever `RUST_LOG` says.
fn test_json_layer<S, W>(logs: W) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .fmt_fields(fields::LeanJsonFields)
        .with_writer(logs)
        .with_filter(EnvFilter::new("info,order_service=debug,inventory_service=debug,payment_service=debug"))
}

/// Flushes and stops span export (call once before the process exits).
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && let Err(e) = provider.shutdown()
    {
        eprintln!("flushing traces failed: {e}");
    }
}

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

fn resource() -> Resource {
    let name = std::env::var("OTEL_SERVICE_NAME").ok().filter(|n| !n.is_empty());
    Resource::builder().with_service_name(name.unwrap_or_else(|| "orderflow".to_owned())).build()
}

fn otel_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    trace::note_otel_layer();
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("orderflow"))
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
}

/// Builds the OTLP/HTTP exporter, whose reqwest client (rustls, for an `https://` collector) takes
/// the process's default rustls provider and fails to build without one: ring is installed first
/// unless a provider is there already. This is what `orderflow_platform::tls::install_crypto_provider`
/// does; that crate sits above this one, and the exporter may be built before it runs.
/// `endpoint` overrides `OTEL_EXPORTER_OTLP_ENDPOINT` (tests).
fn otlp_exporter(
    endpoint: Option<&str>,
) -> Result<opentelemetry_otlp::SpanExporter, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::WithExportConfig as _;
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // `Err`: another thread installed one meanwhile, which stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let builder = opentelemetry_otlp::SpanExporter::builder().with_http();
    match endpoint {
        Some(endpoint) => builder.with_endpoint(endpoint).build(),
        None => builder.build(),
    }
}

/// An OTLP/HTTP exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; `None` (nothing recorded,
/// nothing slowed) otherwise.
fn otlp_provider() -> Option<SdkTracerProvider> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|e| !e.trim().is_empty())?;
    let exporter = match otlp_exporter(None) {
        Ok(e) => e,
        Err(e) => {
            eprintln!(
                "OTEL_EXPORTER_OTLP_ENDPOINT={endpoint} but the OTLP exporter failed: {e}; not exporting"
            );
            return None;
        }
    };
    let provider =
        SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource()).build();
    let _ = PROVIDER.set(provider.clone());
    Some(provider)
}

#[cfg(test)]
mod tls_tests {
    #[test]
    fn an_otlp_exporter_for_an_https_collector_builds_on_the_ring_provider() {
        let exporter = super::otlp_exporter(Some("https://collector.invalid:4318/v1/traces"));

        assert!(exporter.is_ok(), "{:?}", exporter.err());
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
