//! Layered configuration: defaults < optional TOML file < `ORDERFLOW__GATEWAY__…` environment
//! variables < command-line flags.
//!
//! Environment keys are nested with `__`: `ORDERFLOW__GATEWAY__PORT=9000`,
//! `ORDERFLOW__GATEWAY__FAULTS__LATENCY_MS=250`. Unknown keys are errors, so a typo fails at
//! start-up instead of being ignored.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use orderflow_platform::http::Secret;
use serde::{Deserialize, Serialize};

use crate::domain::Faults;

/// Prefix of the environment variables read by [`Config::load`].
pub(crate) const ENV_PREFIX: &str = "ORDERFLOW__GATEWAY__";

/// Default [`Config::idempotency_key_ttl_secs`]: 24 hours.
pub(crate) const DEFAULT_KEY_TTL: Duration = Duration::from_secs(24 * 3600);

/// Everything the simulator needs to start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to bind (default `127.0.0.1`).
    pub host: IpAddr,
    /// Port to bind (default `8090`; `0` picks a free one).
    pub port: u16,
    /// Faults active at start-up (default: none).
    pub faults: Faults,
    /// Seed for the fault rolls, for reproducible runs (default: random).
    pub seed: Option<u64>,
    /// How long in-flight requests may take to finish after shutdown is asked (default 30).
    pub shutdown_timeout_secs: u64,
    /// Where the durable ledger lives: `<data_dir>/gateway-sim.db` (default `.orderflow`).
    pub data_dir: std::path::PathBuf,
    /// The admin token `/admin/*` asks for (`Authorization: Bearer …`); none keeps them closed.
    pub admin_token: Option<Secret>,
    /// How long an `Idempotency-Key` is honoured, in seconds (default 86,400: 24 h; real
    /// gateways keep them 24–48 h). Past it the same key is a new charge; the old charge stays
    /// in the ledger, and expired keys are pruned in the background.
    pub idempotency_key_ttl_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8090,
            faults: Faults::default(),
            seed: None,
            shutdown_timeout_secs: 30,
            data_dir: ".orderflow".into(),
            admin_token: None,
            idempotency_key_ttl_secs: DEFAULT_KEY_TTL.as_secs(),
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Overrides {
    /// `--host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<IpAddr>,
    /// `--port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<std::path::PathBuf>,
    /// `--admin-token` (or `ORDERFLOW_ADMIN_TOKEN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<Secret>,
}

/// Command-line flags of the `gateway-sim` binary (and of `orderflow serve gateway`).
#[derive(Debug, clap::Parser)]
#[command(
    name = "gateway-sim",
    version,
    about = "A stand-in for the external payment gateway, with controllable faults"
)]
pub struct Cli {
    /// Address to bind [default: 127.0.0.1].
    #[arg(long)]
    pub(crate) host: Option<IpAddr>,
    /// Port to bind [default: 8090].
    #[arg(long)]
    pub(crate) port: Option<u16>,
    /// Directory of the durable ledger, `gateway-sim.db` [default: .orderflow].
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<std::path::PathBuf>,
    /// The admin token `/admin/*` asks for (`Authorization: Bearer …`).
    #[arg(long, env = "ORDERFLOW_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<Secret>,
    /// TOML configuration file (overridden by ORDERFLOW__GATEWAY__* variables and flags).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<std::path::PathBuf>,
}

impl Cli {
    /// The layered configuration these flags select.
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::load(
            self.config.as_deref(),
            &Overrides {
                host: self.host,
                port: self.port,
                data_dir: self.data_dir.clone(),
                admin_token: self.admin_token.clone(),
            },
        )
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid gateway-sim configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

impl Config {
    /// Loads the layers: defaults, then the `[gateway]` section of `file` if given (it must
    /// exist; the whole system shares one file, so other sections and top-level keys are other
    /// components' business), then the environment, then `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::extract(Self::layers(file, Env::prefixed(ENV_PREFIX).split("__"), overrides))
    }

    fn layers(file: Option<&Path>, env: Env, overrides: &Overrides) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Figment::from(Toml::file_exact(file)).focus("gateway"));
        }
        figment.merge(env).merge(Serialized::defaults(overrides))
    }

    fn extract(figment: Figment) -> Result<Self, ConfigError> {
        figment.extract().map_err(|e| ConfigError(Box::new(e)))
    }

    /// The address to bind.
    pub(crate) fn address(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// How long an idempotency key is honoured (at least a second).
    pub(crate) fn idempotency_key_ttl(&self) -> Duration {
        Duration::from_secs(self.idempotency_key_ttl_secs.max(1))
    }

    /// The drain deadline.
    pub(crate) fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::Write;

    use super::*;

    /// An environment layer that reads nothing (tests must not depend on the real environment).
    fn no_env() -> Env {
        Env::prefixed("ORDERFLOW__GATEWAY_SIM_TEST_NOTHING__").split("__")
    }

    fn toml_file(contents: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        file
    }

    #[test]
    fn defaults_bind_loopback_on_port_8090_without_faults() {
        let config = Config::extract(Config::layers(None, no_env(), &Overrides::default())).unwrap();

        assert_eq!(config, Config::default());
        assert_eq!(config.address().to_string(), "127.0.0.1:8090");
    }

    #[test]
    fn a_file_overrides_defaults_and_flags_override_the_file() {
        let file = toml_file(
            "nats_url = \"other component's key\"\n[order]\nport = 1\n\
             [gateway]\nport = 9000\nseed = 42\n[gateway.faults]\nlatency_ms = 250\ndecline_rate = 0.25\n",
        );
        let overrides = Overrides { port: Some(9100), ..Overrides::default() };

        let config = Config::extract(Config::layers(Some(file.path()), no_env(), &overrides)).unwrap();

        assert_eq!(config.port, 9100);
        assert_eq!(config.seed, Some(42));
        assert_eq!(config.faults.latency_ms.millis(), 250);
        assert_eq!(config.faults.decline_rate.get(), 0.25);
        assert!(!config.faults.outage);
    }

    #[test]
    fn a_file_with_an_invalid_rate_or_an_unknown_key_is_rejected() {
        for contents in ["[gateway.faults]\nerror_rate = 2.0\n", "[gateway]\nprot = 1\n"] {
            let file = toml_file(contents);

            let result = Config::extract(Config::layers(Some(file.path()), no_env(), &Overrides::default()));

            assert!(result.is_err(), "{contents}");
        }
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let result = Config::load(Some(Path::new("/nonexistent/gateway-sim.toml")), &Overrides::default());

        assert!(result.is_err());
    }
}
