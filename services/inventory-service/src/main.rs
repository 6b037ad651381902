//! The `inventory-service` binary: flags → settings → [`Application`], until SIGTERM/SIGINT.

use clap::Parser as _;
use inventory_service::{Application, Flags, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    orderflow_telemetry::init("info");
    let flags = Flags::parse();
    let settings = Settings::load(flags.common.config.as_deref(), &flags)?;
    let shutdown = orderflow_platform::shutdown::on_signals();
    let result = Application::build(settings).await?.run_until_stopped(shutdown).await;
    orderflow_telemetry::shutdown();
    result
}
