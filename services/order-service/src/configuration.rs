//! Settings: defaults < file (`[order]`) < `ORDERFLOW__ORDER__…` env < flags.

use orderflow_platform::http::RateLimitSettings;
use orderflow_platform::kernel::CommonSettings;
use serde::{Deserialize, Serialize};

/// Everything the order service needs to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// What every service has (SPEC port 8080).
    #[serde(flatten)]
    pub common: CommonSettings,
    /// `POST /orders` answers 503 while more orders than this wait for inventory's
    /// `orders.created` consumers (pending + unacknowledged; 0: no limit).
    pub(crate) max_saga_backlog: u64,
    /// Per-client rate of `POST /orders` (`[order.rate_limit]`: `per_second`, `burst`,
    /// `trust_forwarded_for`); off by default.
    pub rate_limit: RateLimitSettings,
}

orderflow_platform::common_settings!(Settings);

impl Default for Settings {
    fn default() -> Self {
        Self {
            common: CommonSettings::for_service(8080, "order-service", "orders"),
            max_saga_backlog: 5_000,
            rate_limit: RateLimitSettings::default(),
        }
    }
}
