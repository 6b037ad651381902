//! Logging set-up for every orderflow process.
//!
//! One call, [`init`], installs a `tracing` subscriber: JSON lines when stdout is not a terminal or
//! `LOG_FORMAT=json`, human-readable output on a terminal or with `LOG_FORMAT=pretty`; the level
//! comes from `RUST_LOG` (default `info`). It owns no business logic and never panics when a
//! subscriber is already installed (tests call it many times).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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
    pub fn from_env() -> Self {
        match std::env::var("LOG_FORMAT").ok().as_deref() {
            Some("json") => Self::Json,
            Some("pretty" | "text") => Self::Pretty,
            _ if std::io::stdout().is_terminal() => Self::Pretty,
            _ => Self::Json,
        }
    }
}

/// Installs the global subscriber once; later calls are no-ops. Returns whether this call
/// installed it.
pub fn init(default_directive: &str) -> bool {
    init_with(LogFormat::from_env(), default_directive)
}

/// Like [`init`] with an explicit format.
pub fn init_with(format: LogFormat, default_directive: &str) -> bool {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_directive));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_target(true),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(tracing_subscriber::fmt::layer().with_target(false)).try_init(),
    };
    result.is_ok()
}

/// For tests: logs to the test writer (captured per test), filtered by `RUST_LOG` (default
/// `warn`). Safe to call from every test.
pub fn init_for_tests() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_test_writer())
        .try_init();
}
