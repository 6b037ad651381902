//! The service's settings, loaded in layers: defaults < TOML file (`[analytics]` section, shared
//! keys at the top level) < environment (`ORDERFLOW__ANALYTICS__PORT`) < command-line flags.

use orderflow_platform::kernel::{CommonSettings, ConsumerSettings};
use serde::{Deserialize, Serialize};

/// Everything the service needs to start.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// What every service has (SPEC port 8083). Its consumer tuning applies to each of the 16
    /// consumers (eight events, standard and express lanes).
    #[serde(flatten)]
    pub common: CommonSettings,
    /// Most `GET /analytics/stream` watchers at once; more get `503` + `Retry-After`.
    pub max_watchers: usize,
    /// The payment gateway's base URL (`http://127.0.0.1:8090`): the dashboard's outage control
    /// calls its admin API through this service. None: the control answers 404.
    pub gateway_url: Option<String>,
}

orderflow_platform::common_settings!(Settings);

impl Default for Settings {
    fn default() -> Self {
        let mut common = CommonSettings::for_service(8083, "analytics", "analytics");
        common.consumer = ConsumerSettings { concurrency: 16, fetch_batch: 64, handler_timeout_secs: 60 };
        Self { common, max_watchers: 256, gateway_url: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let s = Settings::default();
        assert_eq!((s.common.host.as_str(), s.common.port), ("127.0.0.1", 8083));
        assert_eq!(s.common.database_url, "sqlite://.orderflow/analytics.db");
        assert_eq!(s.max_watchers, 256);
    }
}
