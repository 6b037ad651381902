//! Command-line parsing and dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::system::{System, UpOptions};

/// orderflow: an event-driven order system on NATS JetStream.
#[derive(Debug, Parser)]
#[command(name = "orderflow", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the whole system in this process: nats-server, the four services and the gateway
    /// simulator. Ctrl-C drains and stops it.
    Up(UpArgs),
    /// Write the JSON Schemas of every event (or check them with --check); list the events and
    /// their versions, diff two versions, show a schema.
    Schemas(crate::schemas::SchemasArgs),
    /// List, show, replay or purge dead letters on any NATS server.
    Dlq(crate::dlq::DlqArgs),
    /// Drive orders through a running system (or one started for the run) and report throughput,
    /// latency and correctness.
    Load(crate::load::LoadArgs),
    /// Measure JetStream, the messaging layer and the saga on this machine; write bench.json and
    /// bench.md.
    Bench(crate::bench::BenchArgs),
    /// NATS identities: write credentials and the server's auth.conf, provision JetStream as
    /// the admin identity, show what an identity may do.
    Nats(crate::nats::NatsArgs),
    /// PostgreSQL roles: one per service, owning its schema and nothing else.
    Db(crate::db_roles::DbArgs),
    /// Rebuild the analytics read model from the streams, or print its summary.
    Analytics(crate::analytics::AnalyticsArgs),
    /// Run one service in this process (flags as its own binary's); SIGTERM drains it.
    #[command(subcommand)]
    Serve(crate::serve::Service),
    /// Write a development CA and NATS server/client certificates (PEM) into a directory.
    Certs(crate::certs::CertsArgs),
    /// Fault-injection suite: a 3-node NATS cluster, several instances of each service, load,
    /// a seeded schedule of crashes, hangs, gateway faults and duplicate storms, then the five
    /// invariants. Writes a JSON report; exits non-zero on any violation.
    Verify(crate::verify::VerifyArgs),
}

/// Flags of `orderflow up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Interface every HTTP server listens on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Order API port.
    #[arg(long, default_value_t = 8080)]
    order_port: u16,
    /// Inventory API port.
    #[arg(long, default_value_t = 8081)]
    inventory_port: u16,
    /// Payment service port (health and metrics).
    #[arg(long, default_value_t = 8082)]
    payment_port: u16,
    /// Analytics service port (the live dashboard).
    #[arg(long, default_value_t = 8083)]
    analytics_port: u16,
    /// Gateway simulator port.
    #[arg(long, default_value_t = 8090)]
    gateway_port: u16,
    /// Where SQLite files and the embedded nats-server's store live.
    #[arg(long, default_value = ".orderflow")]
    data_dir: PathBuf,
    /// Use this NATS server instead of starting one.
    #[arg(long, env = "NATS_URL", hide_env_values = true)]
    nats_url: Option<String>,
    /// Client port of the embedded nats-server (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    nats_port: u16,
    /// postgres://… to use PostgreSQL (a schema per service) instead of SQLite files.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Configuration file (TOML) layered under the environment and these flags.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Do not seed the demo catalog.
    #[arg(long)]
    no_seed: bool,
    /// The admin token of `PUT /inventory/{id}` and the gateway's `/admin/*`; default: the one
    /// in `<data-dir>/admin-token`, created (mode 0600) on the first start.
    #[arg(long, env = "ORDERFLOW_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<orderflow_platform::http::Secret>,
}

impl Cli {
    /// Runs the command; the exit code says how it went.
    pub async fn run(self) -> ExitCode {
        // Before any HTTP client (the OTLP exporter's, load's, verify's) or TLS connection.
        orderflow_platform::tls::install_crypto_provider();
        // load and bench run services in-process: their per-order info lines would drown the
        // progress bar and the report (RUST_LOG still overrides).
        let default_filter = match &self.command {
            Command::Load(_) | Command::Bench(_) => "warn,sqlx::pool::acquire=error",
            // The suite narrates its faults at info; the services it starts log to their own files.
            Command::Verify(_) => "info,async_nats=warn,sqlx::pool::acquire=error",
            // dlq prints its tables and JSON on stdout, where the logs go too.
            Command::Dlq(_)
            | Command::Analytics(_)
            | Command::Nats(_)
            | Command::Db(_)
            | Command::Certs(_) => "warn",
            _ => "info,async_nats=warn",
        };
        orderflow_telemetry::init(default_filter);
        let result = match self.command {
            Command::Up(args) => up(args).await,
            Command::Schemas(args) => args.run(),
            Command::Certs(args) => args.run(),
            Command::Dlq(args) => crate::dlq::run(args).await,
            Command::Analytics(args) => args.run().await,
            Command::Nats(args) => args.run().await,
            Command::Db(args) => args.run().await,
            Command::Load(args) => args.run(orderflow_platform::shutdown::on_signals()).await,
            Command::Bench(args) => args.run(orderflow_platform::shutdown::on_signals()).await,
            Command::Serve(service) => service.run(orderflow_platform::shutdown::on_signals()).await,
            Command::Verify(args) => args.run(orderflow_platform::shutdown::on_signals()).await,
        };
        orderflow_telemetry::shutdown();
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}

async fn up(a: UpArgs) -> anyhow::Result<()> {
    let shutdown = orderflow_platform::shutdown::on_signals();
    let started = System::start_until(
        UpOptions {
            host: a.host,
            order_port: a.order_port,
            inventory_port: a.inventory_port,
            payment_port: a.payment_port,
            analytics_port: a.analytics_port,
            gateway_port: a.gateway_port,
            data_dir: a.data_dir,
            nats_url: a.nats_url.filter(|u| !u.trim().is_empty()),
            nats_port: a.nats_port,
            database_url: a.database_url.filter(|u| !u.trim().is_empty()),
            config: a.config,
            seed_demo_catalog: !a.no_seed,
            admin_token: a.admin_token.map(|t| t.expose().to_owned()),
            tune: None,
        },
        &shutdown,
    )
    .await?;
    // Stopped (Ctrl-C, SIGTERM) while the services were still waiting for their database or NATS.
    let Some(system) = started else { return Ok(()) };
    crate::output::line(system.banner())?;
    system.run_until(shutdown).await
}
