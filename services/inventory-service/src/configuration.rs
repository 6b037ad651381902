//! The service's settings, loaded in layers: defaults < TOML file (`[inventory]` section, shared
//! keys at the top level) < environment (`ORDERFLOW__INVENTORY__PORT`, `ORDERFLOW__NATS_URL`) <
//! command-line flags.

use orderflow_platform::kernel::{CommonSettings, ConsumerSettings};
use serde::{Deserialize, Serialize};

/// Everything the service needs to start.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// What every service has (SPEC port 8081). Its consumer tuning applies to each of the six
    /// consumers (three events, standard and express lanes).
    #[serde(flatten)]
    pub common: CommonSettings,
    /// Seeds the demo catalog (`sku-001`…) at start-up; existing products are left untouched.
    pub seed_demo_catalog: bool,
}

orderflow_platform::common_settings!(Settings);

impl Default for Settings {
    fn default() -> Self {
        let mut common = CommonSettings::for_service(8081, "inventory", "inventory");
        common.consumer = ConsumerSettings { concurrency: 16, fetch_batch: 32, handler_timeout_secs: 60 };
        Self { common, seed_demo_catalog: false }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use orderflow_platform::config::ServiceFlags;
    use orderflow_platform::kernel::load_settings;

    use super::*;
    use crate::InventoryService;

    #[test]
    fn defaults_match_the_spec() {
        let s = Settings::default();
        assert_eq!((s.common.host.as_str(), s.common.port), ("127.0.0.1", 8081));
        assert_eq!(s.common.database_url, "sqlite://.orderflow/inventory.db");
        assert_eq!(s.common.shutdown_timeout(), Duration::from_secs(30));
    }

    #[test]
    fn debug_output_hides_the_database_password() {
        let mut s = Settings::default();
        s.common.database_url = "postgres://u:secret@h/db".to_owned();
        let text = format!("{s:?}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn flags_override_defaults_and_absent_flags_do_not() {
        let flags = ServiceFlags { port: Some(9999), ..ServiceFlags::default() };
        let s = load_settings::<InventoryService>(None, &flags).unwrap();
        assert_eq!(s.common.port, 9999);
        assert_eq!(s.common.host, "127.0.0.1");
        assert_eq!(s.common.consumer.concurrency, 16, "the service's own defaults stay");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn a_renamed_or_misspelt_key_is_an_error_that_names_it() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ORDERFLOW__INVENTORY__CONSUMER_CONCURRENCY", "3");
            jail.create_file("c.toml", "[inventory]\nseed_demo_catalgo = true\n")?;

            let e = load_settings::<InventoryService>(
                Some(std::path::Path::new("c.toml")),
                &ServiceFlags::default(),
            )
            .unwrap_err()
            .to_string();

            assert!(e.contains("consumer_concurrency (now consumer.concurrency)"), "{e}");
            assert!(e.contains("seed_demo_catalgo"), "{e}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn section_keys_reach_the_flattened_common_settings_and_the_service_own() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "nats_url = \"nats://file:1\"\n[inventory]\nseed_demo_catalog = true\n",
            )?;
            jail.set_env("ORDERFLOW__INVENTORY__CONSUMER__CONCURRENCY", "3");
            jail.set_env("ORDERFLOW__INVENTORY__PORT", "7");
            let s = load_settings::<InventoryService>(
                Some(std::path::Path::new("c.toml")),
                &ServiceFlags::default(),
            )
            .unwrap();
            assert_eq!(s.common.nats_url, "nats://file:1");
            assert_eq!((s.common.port, s.common.consumer.concurrency), (7, 3));
            assert_eq!(s.common.consumer.fetch_batch, 32);
            assert!(s.seed_demo_catalog);
            Ok(())
        });
    }
}
