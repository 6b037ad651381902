//! The `gateway-sim` binary: parse flags, load the layered config, serve until SIGTERM/SIGINT.

use clap::Parser;
use gateway_sim::{Cli, startup};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    orderflow_telemetry::init("info");
    let config = cli.config()?;
    let listener = startup::bind(&config).await?;
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        match startup::shutdown_signal().await {
            Ok(()) => on_signal.cancel(),
            // Without handlers the default signal disposition still stops the process.
            Err(error) => tracing::error!(%error, "cannot listen for shutdown signals"),
        }
    });
    startup::run(listener, config, shutdown).await
}
