//! The service's settings, loaded in layers: defaults < TOML file (`[inventory]` section, shared
//! keys at the top level) < environment (`ORDERFLOW__INVENTORY__PORT`, `ORDERFLOW__NATS_URL`) <
//! command-line flags.

use std::path::Path;
use std::time::Duration;

use orderflow_messaging::RuntimeConfig;
use orderflow_platform::config::ServiceFlags;
use serde::{Deserialize, Serialize};

/// Everything the service needs to start.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Interface the HTTP API listens on.
    pub host: String,
    /// HTTP port; 0 picks a free one (tests).
    pub port: u16,
    /// NATS server URL(s), comma-separated.
    pub nats_url: String,
    /// `sqlite://path` (default, a file under `.orderflow/`) or `postgres://…`.
    pub database_url: String,
    /// PostgreSQL schema of this service (ignored for SQLite).
    pub db_schema: String,
    /// Upper bound on a graceful shutdown (stop HTTP, finish handlers, flush the outbox, drain
    /// NATS); past it the service gives up and reports an error.
    pub shutdown_timeout_secs: u64,
    /// How long readiness answers 503 before the listener closes, so that a load balancer stops
    /// routing first. 0 (the default) closes at once; set it to the balancer's probe period.
    pub ready_drain_delay_ms: u64,
    /// JetStream stream replicas (1 locally, 3 in a cluster).
    pub stream_replicas: usize,
    /// Seeds the demo catalog (`sku-001`…) at start-up; existing products are left untouched.
    pub seed_demo_catalog: bool,
    /// Tuning of each consumer (there are six: three events, standard and express lanes).
    pub consumer: ConsumerSettings,
}

/// Tuning of one consumer runtime.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerSettings {
    /// Handlers running at once per consumer.
    pub concurrency: usize,
    /// Largest pull request.
    pub fetch_batch: usize,
    /// A handler running longer is abandoned and its message redelivered.
    pub handler_timeout_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8081,
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            database_url: "sqlite://.orderflow/inventory.db".to_owned(),
            db_schema: "inventory".to_owned(),
            shutdown_timeout_secs: 30,
            ready_drain_delay_ms: 0,
            stream_replicas: 1,
            seed_demo_catalog: false,
            consumer: ConsumerSettings::default(),
        }
    }
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self { concurrency: 16, fetch_batch: 32, handler_timeout_secs: 60 }
    }
}

// By hand so that a password in `database_url` never reaches a log line.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("nats_url", &self.nats_url)
            .field("database_url", &orderflow_platform::db::redact(&self.database_url))
            .field("db_schema", &self.db_schema)
            .field("shutdown_timeout_secs", &self.shutdown_timeout_secs)
            .field("ready_drain_delay_ms", &self.ready_drain_delay_ms)
            .field("stream_replicas", &self.stream_replicas)
            .field("seed_demo_catalog", &self.seed_demo_catalog)
            .field("consumer", &self.consumer)
            .finish()
    }
}

impl Settings {
    /// Loads the layers; `flags` is serialized with absent flags skipped.
    ///
    /// # Errors
    /// A file that does not parse, or a value of the wrong type anywhere.
    pub fn load(file: Option<&Path>, flags: &impl Serialize) -> anyhow::Result<Self> {
        orderflow_platform::config::load("inventory", &Self::default(), file, flags)
            .map_err(|e| anyhow::anyhow!("loading the inventory-service configuration: {e}"))
    }

    /// [`Self::shutdown_timeout_secs`] as a duration.
    #[must_use]
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    /// The consumer runtimes' tuning.
    #[must_use]
    pub fn runtime_config(&self) -> RuntimeConfig {
        RuntimeConfig {
            concurrency: self.consumer.concurrency.max(1),
            fetch_batch: self.consumer.fetch_batch.max(1),
            handler_timeout: Duration::from_secs(self.consumer.handler_timeout_secs.max(1)),
            ..RuntimeConfig::default()
        }
    }
}

/// Command-line flags of the `inventory-service` binary; absent flags leave the lower layers be.
#[derive(Debug, clap::Parser, Serialize)]
#[command(name = "inventory-service", about = "orderflow inventory service: products, prices and stock")]
pub struct Flags {
    /// The flags every service takes.
    #[command(flatten)]
    #[serde(flatten)]
    pub common: ServiceFlags,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let s = Settings::default();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 8081));
        assert_eq!(s.database_url, "sqlite://.orderflow/inventory.db");
        assert_eq!(s.shutdown_timeout(), Duration::from_secs(30));
    }

    #[test]
    fn debug_output_hides_the_database_password() {
        let s = Settings { database_url: "postgres://u:secret@h/db".to_owned(), ..Settings::default() };
        let text = format!("{s:?}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn flags_override_defaults_and_absent_flags_do_not() {
        let flags = Flags { common: ServiceFlags { port: Some(9999), ..ServiceFlags::default() } };
        let s = Settings::load(None, &flags).unwrap();
        assert_eq!(s.port, 9999);
        assert_eq!(s.host, "127.0.0.1");
    }
}
