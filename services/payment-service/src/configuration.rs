//! Settings: defaults < file < `ORDERFLOW__…` env < flags.

use std::time::Duration;

use orderflow_platform::kernel::CommonSettings;
use orderflow_resilience::BreakerConfig;
use serde::{Deserialize, Serialize};

/// Everything the payment service needs to run. `Debug` redacts a password in `gateway_url`
/// (and, through [`CommonSettings`], in the database and NATS URLs).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// What every service has (SPEC port 8082). `consumer.concurrency` is how many charges are
    /// in flight at once per lane.
    #[serde(flatten)]
    pub common: CommonSettings,
    /// Base URL of the payment gateway (`http://…` or `https://…`).
    pub gateway_url: String,
    /// PEM file of a CA to trust for an `https://` gateway besides the system's roots (a
    /// private CA, or the gateway's own self-signed certificate).
    pub gateway_ca: Option<std::path::PathBuf>,
    /// Timeout of one gateway call, in milliseconds.
    pub gateway_timeout_ms: u64,
    /// How long an order may wait for its payment before it fails with `payment_unavailable`
    /// (SPEC: 5 minutes), in seconds.
    pub max_wait_secs: u64,
    /// Breaker: rolling window in milliseconds.
    pub(crate) breaker_window_ms: u64,
    /// Breaker: fewest calls before it may open.
    pub breaker_min_calls: u32,
    /// Breaker: failure share that opens it.
    pub breaker_failure_rate: f64,
    /// Breaker: time open before a probe, in milliseconds (SPEC: within 5 s).
    pub breaker_open_ms: u64,
}

orderflow_platform::common_settings!(Settings);

// By hand so that gateway credentials in the URL never reach a log line.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("common", &self.common)
            .field("gateway_url", &orderflow_platform::db::redact(&self.gateway_url))
            .field("gateway_ca", &self.gateway_ca)
            .field("gateway_timeout_ms", &self.gateway_timeout_ms)
            .field("max_wait_secs", &self.max_wait_secs)
            .field("breaker_window_ms", &self.breaker_window_ms)
            .field("breaker_min_calls", &self.breaker_min_calls)
            .field("breaker_failure_rate", &self.breaker_failure_rate)
            .field("breaker_open_ms", &self.breaker_open_ms)
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        let b = BreakerConfig::default();
        Self {
            common: CommonSettings::for_service(8082, "payment-service", "payments"),
            gateway_url: "http://127.0.0.1:8090".to_owned(),
            gateway_ca: None,
            gateway_timeout_ms: 5_000,
            max_wait_secs: 300,
            breaker_window_ms: duration_ms(b.window),
            breaker_min_calls: b.min_calls,
            breaker_failure_rate: b.failure_rate,
            breaker_open_ms: duration_ms(b.open_for),
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Settings {
    /// The breaker configuration these settings describe.
    pub(crate) fn breaker(&self) -> BreakerConfig {
        BreakerConfig {
            window: Duration::from_millis(self.breaker_window_ms),
            min_calls: self.breaker_min_calls,
            failure_rate: self.breaker_failure_rate,
            open_for: Duration::from_millis(self.breaker_open_ms),
            ..BreakerConfig::default()
        }
    }
}

/// The payment service's own flags (besides those every service takes).
#[derive(Clone, Debug, Default, clap::Args, Serialize)]
pub struct PaymentFlags {
    /// Payment gateway base URL.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) gateway_url: Option<String>,
}
