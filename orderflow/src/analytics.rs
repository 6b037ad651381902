//! `orderflow analytics`: the analytics read model from the command line.
//!
//! - `rebuild` folds every event stored in the streams into a store: by default a fresh one in a
//!   temporary directory (a check: compare it with the live service with `--compare`), or the
//!   service's own with `--database-url` (stop the service first; `--reset` empties it before,
//!   without it only events the store lacks are added).
//! - `summary` prints a running service's summary.

use std::time::Duration;

use analytics_service::{Summary, rebuild};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use orderflow_platform::Db;

use crate::output;

/// Flags of `orderflow analytics`.
#[derive(Debug, Args)]
pub struct AnalyticsArgs {
    #[command(subcommand)]
    command: AnalyticsCommand,
}

#[derive(Debug, Subcommand)]
enum AnalyticsCommand {
    /// Rebuild the read model from the start of the ORDERS, INVENTORY and PAYMENTS streams.
    Rebuild(RebuildArgs),
    /// Print a running analytics service's summary as JSON.
    Summary {
        /// The analytics service.
        #[arg(long, default_value = "http://127.0.0.1:8083")]
        url: String,
    },
}

#[derive(Debug, Args)]
struct RebuildArgs {
    /// The NATS server holding the streams.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222", hide_env_values = true)]
    nats_url: String,
    /// Credentials or nkey seed file of the admin identity (replaying creates consumers);
    /// default: `orderflow up`'s, `.orderflow/nats-creds/admin.nk`, when it exists.
    #[arg(long, env = "NATS_CREDS")]
    creds: Option<std::path::PathBuf>,
    /// PEM file of the CA that signed the NATS servers' certificates (requires TLS).
    #[arg(long, env = "NATS_CA")]
    nats_ca: Option<std::path::PathBuf>,
    /// The store to rebuild (sqlite://… or postgres://…); default: a fresh SQLite file in a
    /// temporary directory, removed afterwards.
    #[arg(long)]
    database_url: Option<String>,
    /// PostgreSQL schema of the store.
    #[arg(long, default_value = "analytics")]
    schema: String,
    /// Empty the store first (the service must be stopped).
    #[arg(long, requires = "database_url")]
    reset: bool,
    /// A running analytics service (`http://127.0.0.1:8083`) whose summary must equal the
    /// rebuilt one; exits non-zero when they differ.
    #[arg(long)]
    compare: Option<String>,
}

impl AnalyticsArgs {
    /// Runs the subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            AnalyticsCommand::Rebuild(args) => rebuild_store(args).await,
            AnalyticsCommand::Summary { url } => {
                let summary = fetch_summary(&orderflow_platform::tls::http_client(), &url).await?;
                output::line(serde_json::to_string_pretty(&summary)?)
            }
        }
    }
}

async fn rebuild_store(a: RebuildArgs) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new().prefix("orderflow-analytics-").tempdir()?;
    let url = a
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", tmp.path().join("analytics.db").display()));
    let db = Db::connect(&url, &a.schema, &analytics_service::startup::MIGRATIONS)
        .await
        .with_context(|| format!("opening the store {}", orderflow_platform::db::redact(&url)))?;
    if a.reset {
        rebuild::reset(&db).await.context("emptying the store")?;
    }
    let tls = orderflow_messaging::NatsTls { ca_file: a.nats_ca.clone(), ..Default::default() };
    let creds = crate::nats::creds_or_up_default(a.creds.clone());
    let client = orderflow_messaging::connect::tool_options(creds.as_deref(), &tls)?
        .name("orderflow/analytics-rebuild")
        .connection_timeout(Duration::from_secs(5))
        .connect(orderflow_messaging::connect::server_list(&a.nats_url).as_slice())
        .await
        .with_context(|| format!("connecting to NATS at {}", a.nats_url))?;
    let js = async_nats::jetstream::new(client);
    let replayed = rebuild::replay(&js, &db).await?;
    let rebuilt = analytics_service::summary::read(&db, time::OffsetDateTime::now_utc()).await?;
    db.close().await;
    output::line(format_args!(
        "replayed {} messages: {} folded, {} already in the store, {} skipped (not a folded event)",
        replayed.read, replayed.folded, replayed.duplicates, replayed.skipped
    ))?;
    output::line(serde_json::to_string_pretty(&rebuilt)?)?;
    if let Some(live_url) = a.compare {
        let live = fetch_summary(&orderflow_platform::tls::http_client(), &live_url).await?;
        let differences = differences(&live, &rebuilt);
        if !differences.is_empty() {
            anyhow::bail!("the rebuilt summary differs from {live_url}:\n  {}", differences.join("\n  "));
        }
        output::line(format_args!("the rebuilt summary equals the live one at {live_url}"))?;
    }
    Ok(())
}

/// `GET <url>/analytics/summary` of a running analytics service.
pub(crate) async fn fetch_summary(http: &reqwest::Client, url: &str) -> anyhow::Result<Summary> {
    let url = format!("{}/analytics/summary", url.trim_end_matches('/'));
    let res =
        http.get(&url).timeout(Duration::from_secs(10)).send().await.with_context(|| format!("GET {url}"))?;
    anyhow::ensure!(res.status().is_success(), "GET {url}: {}", res.status());
    res.json().await.with_context(|| format!("reading the summary from {url}"))
}

/// The fields in which two summaries differ (`as_of` aside: they were read at different times).
pub fn differences(live: &Summary, rebuilt: &Summary) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{name}: live {a}, rebuilt {b}"));
        }
    };
    check("totals", format!("{:?}", live.totals), format!("{:?}", rebuilt.totals));
    check(
        "cancelled_by_reason",
        format!("{:?}", live.cancelled_by_reason),
        format!("{:?}", rebuilt.cancelled_by_reason),
    );
    check("revenue_cents", format!("{:?}", live.revenue_cents), format!("{:?}", rebuilt.revenue_cents));
    check("latency_ms", format!("{:?}", live.latency_ms), format!("{:?}", rebuilt.latency_ms));
    check("in_flight", live.in_flight.to_string(), rebuilt.in_flight.to_string());
    check("flow", format!("{:?}", live.flow), format!("{:?}", rebuilt.flow));
    check("top_products", format!("{:?}", live.top_products), format!("{:?}", rebuilt.top_products));
    out
}
