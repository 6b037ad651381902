//! Settings: defaults < file < `ORDERFLOW__…` env < flags.

use orderflow_platform::config::ServiceFlags;
use serde::{Deserialize, Serialize};

/// Everything the order service needs to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Settings {
    /// Interface for HTTP.
    pub host: String,
    /// HTTP port (SPEC: 8080).
    pub port: u16,
    /// NATS URL(s).
    pub nats_url: String,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// PostgreSQL schema of this service.
    pub db_schema: String,
    /// Upper bound on a graceful shutdown, in seconds.
    pub shutdown_timeout_secs: u64,
    /// How long readiness answers 503 before the listener closes on shutdown, so a load balancer
    /// stops routing first (0 closes at once).
    pub ready_drain_delay_ms: u64,
    /// JetStream stream replicas this service provisions (1 locally, 3 in a cluster); every
    /// service of one deployment must agree, or provisioning flips the replica count.
    pub stream_replicas: usize,
    /// Handlers running at once per consumer.
    pub consumer_concurrency: usize,
    /// `POST /orders` answers 503 while more orders than this wait for inventory's
    /// `orders.created` consumers (pending + unacknowledged; 0: no limit).
    pub max_saga_backlog: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8080,
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            database_url: "sqlite://.orderflow/order-service.db".to_owned(),
            db_schema: "orders".to_owned(),
            shutdown_timeout_secs: 30,
            ready_drain_delay_ms: 0,
            stream_replicas: 1,
            consumer_concurrency: 32,
            max_saga_backlog: 5_000,
        }
    }
}

/// Command-line flags of the standalone binary.
#[derive(Debug, clap::Parser, Serialize)]
#[command(name = "order-service", about = "orderflow order service", version)]
pub struct Cli {
    #[command(flatten)]
    #[serde(flatten)]
    flags: ServiceFlags,
}

impl Cli {
    /// The layered settings.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        Ok(orderflow_platform::config::load(
            "order",
            &Settings::default(),
            self.flags.config.as_deref(),
            self,
        )?)
    }
}
