//! `orderflow serve <service>`: one service per process, from the same binary.
//!
//! `orderflow up` runs every service in one process; production (and `orderflow verify`, which
//! kills instances one at a time) runs each in its own. The flags, the configuration file and
//! the `ORDERFLOW__…` environment are exactly those of the service's own binary
//! (`order-service`, `inventory-service`, `payment-service`, `analytics-service`, `gateway-sim`), so one image or one
//! `cargo build` serves every role.

use analytics_service::AnalyticsService;
use anyhow::Context as _;
use clap::Subcommand;
use inventory_service::InventoryService;
use order_service::OrderService;
use orderflow_platform::kernel::{self, Flags, NoFlags};
use payment_service::{PaymentService, configuration::PaymentFlags};
use tokio_util::sync::CancellationToken;

/// Which service to run.
#[derive(Debug, Subcommand)]
pub enum Service {
    /// The order API (what `order-service` runs).
    Order(Flags<NoFlags>),
    /// The inventory service (what `inventory-service` runs).
    Inventory(Flags<NoFlags>),
    /// The payment service (what `payment-service` runs).
    Payment(Flags<PaymentFlags>),
    /// The analytics read model and dashboard (what `analytics-service` runs).
    Analytics(Flags<NoFlags>),
    /// The payment gateway simulator (what `gateway-sim` runs).
    Gateway(gateway_sim::Cli),
}

impl Service {
    /// The service's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        use orderflow_platform::kernel::Service as _;
        match self {
            Self::Order(_) => OrderService::NAME,
            Self::Inventory(_) => InventoryService::NAME,
            Self::Payment(_) => PaymentService::NAME,
            Self::Analytics(_) => AnalyticsService::NAME,
            Self::Gateway(_) => "gateway-sim",
        }
    }

    /// Builds the service from its layered settings and runs it until `shutdown`, then drains.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let name = self.name();
        let result = match self {
            Self::Order(flags) => kernel::serve::<OrderService>(&flags, shutdown).await,
            Self::Inventory(flags) => kernel::serve::<InventoryService>(&flags, shutdown).await,
            Self::Payment(flags) => kernel::serve::<PaymentService>(&flags, shutdown).await,
            Self::Analytics(flags) => kernel::serve::<AnalyticsService>(&flags, shutdown).await,
            Self::Gateway(cli) => {
                let config = cli.config()?;
                let listener = gateway_sim::bind(&config).await?;
                gateway_sim::run(listener, config, shutdown).await
            }
        };
        result.with_context(|| format!("{name} failed"))
    }
}
