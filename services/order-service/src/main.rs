use clap::Parser;
use order_service::{Application, configuration::Cli};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    orderflow_telemetry::init("info");
    let settings = Cli::parse().settings()?;
    let shutdown = orderflow_platform::shutdown::on_signals();
    let result = Application::build(settings).await?.run_until_stopped(shutdown).await;
    orderflow_telemetry::shutdown();
    result
}
