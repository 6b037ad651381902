use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    orderflow::cli::Cli::parse().run().await
}
