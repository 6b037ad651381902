//! Settings: defaults < file < `ORDERFLOW__…` env < flags.

use std::time::Duration;

use orderflow_platform::config::ServiceFlags;
use orderflow_resilience::BreakerConfig;
use serde::{Deserialize, Serialize};

/// Everything the payment service needs to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Settings {
    /// Interface for HTTP.
    pub host: String,
    /// HTTP port (SPEC: 8082).
    pub port: u16,
    /// NATS URL(s).
    pub nats_url: String,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// PostgreSQL schema of this service.
    pub db_schema: String,
    /// Base URL of the payment gateway.
    pub gateway_url: String,
    /// Timeout of one gateway call, in milliseconds.
    pub gateway_timeout_ms: u64,
    /// How long an order may wait for its payment before it fails with `payment_unavailable`
    /// (SPEC: 5 minutes), in seconds.
    pub max_wait_secs: u64,
    /// Breaker: rolling window in milliseconds.
    pub breaker_window_ms: u64,
    /// Breaker: fewest calls before it may open.
    pub breaker_min_calls: u32,
    /// Breaker: failure share that opens it.
    pub breaker_failure_rate: f64,
    /// Breaker: time open before a probe, in milliseconds (SPEC: within 5 s).
    pub breaker_open_ms: u64,
    /// Upper bound on a graceful shutdown, in seconds.
    pub shutdown_timeout_secs: u64,
    /// How long readiness answers 503 before the listener closes on shutdown, so a load balancer
    /// stops routing first (0 closes at once).
    pub ready_drain_delay_ms: u64,
    /// JetStream stream replicas this service provisions (1 locally, 3 in a cluster); every
    /// service of one deployment must agree, or provisioning flips the replica count.
    pub stream_replicas: usize,
    /// Charges in flight at once.
    pub consumer_concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        let b = BreakerConfig::default();
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8082,
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            database_url: "sqlite://.orderflow/payment-service.db".to_owned(),
            db_schema: "payments".to_owned(),
            gateway_url: "http://127.0.0.1:8090".to_owned(),
            gateway_timeout_ms: 5_000,
            max_wait_secs: 300,
            breaker_window_ms: duration_ms(b.window),
            breaker_min_calls: b.min_calls,
            breaker_failure_rate: b.failure_rate,
            breaker_open_ms: duration_ms(b.open_for),
            shutdown_timeout_secs: 30,
            ready_drain_delay_ms: 0,
            stream_replicas: 1,
            consumer_concurrency: 32,
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Settings {
    /// The breaker configuration these settings describe.
    pub fn breaker(&self) -> BreakerConfig {
        BreakerConfig {
            window: Duration::from_millis(self.breaker_window_ms),
            min_calls: self.breaker_min_calls,
            failure_rate: self.breaker_failure_rate,
            open_for: Duration::from_millis(self.breaker_open_ms),
            ..BreakerConfig::default()
        }
    }
}

/// Command-line flags of the standalone binary.
#[derive(Debug, clap::Parser, Serialize)]
#[command(name = "payment-service", about = "orderflow payment service", version)]
pub struct Cli {
    #[command(flatten)]
    #[serde(flatten)]
    flags: ServiceFlags,
    /// Payment gateway base URL.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway_url: Option<String>,
}

impl Cli {
    /// The layered settings.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        Ok(orderflow_platform::config::load(
            "payment",
            &Settings::default(),
            self.flags.config.as_deref(),
            self,
        )?)
    }
}
