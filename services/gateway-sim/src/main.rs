//! The `gateway-sim` binary: parse flags, load the layered config, serve until SIGTERM/SIGINT;
//! `gateway-sim healthcheck` probes the readiness of the gateway the same config describes.

use clap::Parser;
use gateway_sim::{Cli, startup};
use orderflow_platform::healthcheck::HealthcheckArgs;
use tokio_util::sync::CancellationToken;

/// The gateway's flags, and the subcommand every orderflow service binary has.
#[derive(Debug, clap::Parser)]
#[command(
    name = "gateway-sim",
    version,
    about = "A stand-in for the external payment gateway, with controllable faults"
)]
struct Main {
    #[command(flatten)]
    cli: Cli,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Exit 0 when the gateway answers 2xx on /health/ready, 1 otherwise (container health
    /// checks).
    Healthcheck(HealthcheckArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Main { cli, command } = Main::parse();
    if let Some(Command::Healthcheck(probe)) = command {
        let config = cli.config()?;
        let ok = probe
            .run(&config.host.to_string(), config.port)
            .map_err(|e| anyhow::anyhow!("gateway-sim is not ready: {e}"))?;
        println!("{ok}");
        return Ok(());
    }
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
