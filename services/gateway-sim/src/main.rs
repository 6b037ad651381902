//! The `gateway-sim` binary: parse flags, load the layered config, serve until SIGTERM/SIGINT.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;
use gateway_sim::{Config, Overrides, startup};
use tokio_util::sync::CancellationToken;

/// A stand-in for the external payment gateway, with controllable faults.
#[derive(Debug, Parser)]
#[command(name = "gateway-sim", version)]
struct Cli {
    /// Address to bind [default: 127.0.0.1].
    #[arg(long)]
    host: Option<IpAddr>,
    /// Port to bind [default: 8090].
    #[arg(long)]
    port: Option<u16>,
    /// TOML configuration file (overridden by ORDERFLOW__GATEWAY__* variables and flags).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    orderflow_telemetry::init("info");
    let config = Config::load(cli.config.as_deref(), &Overrides { host: cli.host, port: cli.port })?;
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
