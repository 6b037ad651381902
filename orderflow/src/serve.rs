//! `orderflow serve <service>`: one service per process, from the same binary.
//!
//! `orderflow up` runs every service in one process; production (and `orderflow verify`, which
//! kills instances one at a time) runs each in its own. The flags, the configuration file and
//! the `ORDERFLOW__…` environment are exactly those of the service's own binary
//! (`order-service`, `inventory-service`, `payment-service`, `gateway-sim`), so one image or one
//! `cargo build` serves every role.

use anyhow::Context as _;
use clap::Subcommand;
use tokio_util::sync::CancellationToken;

/// Which service to run.
#[derive(Debug, Subcommand)]
pub enum Service {
    /// The order API (what `order-service` runs).
    Order(order_service::configuration::Cli),
    /// The inventory service (what `inventory-service` runs).
    Inventory(inventory_service::Flags),
    /// The payment service (what `payment-service` runs).
    Payment(payment_service::configuration::Cli),
    /// The payment gateway simulator (what `gateway-sim` runs).
    Gateway(gateway_sim::Cli),
}

impl Service {
    /// The service's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Order(_) => "order-service",
            Self::Inventory(_) => "inventory-service",
            Self::Payment(_) => "payment-service",
            Self::Gateway(_) => "gateway-sim",
        }
    }

    /// Builds the service from its layered settings and runs it until `shutdown`, then drains.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let name = self.name();
        let result = match self {
            Self::Order(cli) => {
                order_service::Application::build(cli.settings()?).await?.run_until_stopped(shutdown).await
            }
            Self::Inventory(flags) => {
                let settings = inventory_service::Settings::load(flags.common.config.as_deref(), &flags)?;
                inventory_service::Application::build(settings).await?.run_until_stopped(shutdown).await
            }
            Self::Payment(cli) => {
                payment_service::Application::build(cli.settings()?).await?.run_until_stopped(shutdown).await
            }
            Self::Gateway(cli) => {
                let config = cli.config()?;
                let listener = gateway_sim::bind(&config).await?;
                gateway_sim::run(listener, config, shutdown).await
            }
        };
        result.with_context(|| format!("{name} failed"))
    }
}
