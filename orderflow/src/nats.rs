//! `orderflow nats`: the NATS identities of a deployment.
//!
//! `credentials` writes an nkey seed per identity and the server's `auth.conf` (nkey users with
//! permissions derived from the topology); `provision` creates or updates every stream and
//! consumer as the admin identity (services connected with their own identities only bind);
//! `permissions` prints what an identity may publish and subscribe to.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use orderflow_messaging::topology::provision;
use orderflow_messaging::{ConnectConfig, Topology, identity};

use crate::output;

/// Flags of `orderflow nats`.
#[derive(Debug, Args)]
pub struct NatsArgs {
    #[command(subcommand)]
    command: NatsCommand,
}

#[derive(Debug, Subcommand)]
enum NatsCommand {
    /// Write an nkey seed per identity (`order.nk`, `inventory.nk`, `payment.nk`,
    /// `analytics.nk`, `admin.nk`, mode 0600) and the server's `auth.conf` into a directory.
    /// Existing seeds are kept; `--rotate` replaces the named ones.
    Credentials {
        /// The directory (created mode 0700).
        #[arg(long)]
        out: PathBuf,
        /// Identities to give new keys (then reload the servers: `nats-server --signal reload`,
        /// and restart those services).
        #[arg(long, value_delimiter = ',')]
        rotate: Vec<String>,
        /// JetStream replicas the permissions are computed for (they do not depend on it; the
        /// consumers do).
        #[arg(long, default_value_t = 3)]
        replicas: usize,
    },
    /// Create or update every stream and consumer of the deployment, as the admin identity.
    Provision {
        /// NATS server URL(s), comma-separated.
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222", hide_env_values = true)]
        nats_url: String,
        /// The admin identity's credentials or nkey seed file.
        #[arg(long, env = "NATS_CREDS")]
        creds: Option<PathBuf>,
        /// Stream replicas (1 for one server, 3 for the cluster).
        #[arg(long, default_value_t = 1)]
        replicas: usize,
        /// Give up connecting after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
        /// PEM file of the CA that signed the NATS servers' certificates (requires TLS).
        #[arg(long, env = "NATS_CA")]
        nats_ca: Option<PathBuf>,
    },
    /// Print what an identity may publish and subscribe to.
    Permissions {
        /// `order`, `inventory`, `payment`, `analytics` or `admin`.
        identity: String,
    },
}

/// The admin seed `orderflow up` writes into its default data directory
/// (`.orderflow/nats-creds/admin.nk`).
const UP_ADMIN_SEED: &str = ".orderflow/nats-creds/admin.nk";

/// `given`, else `orderflow up`'s admin seed when it exists here: what the operator tools
/// (`dlq`, `load`, `analytics rebuild`, `nats provision`) connect with when neither `--creds`
/// nor `NATS_CREDS` names a file, so they work against `up` as they are. A server without auth
/// ignores the key.
pub(crate) fn creds_or_up_default(given: Option<PathBuf>) -> Option<PathBuf> {
    given.or_else(|| {
        let seed = PathBuf::from(UP_ADMIN_SEED);
        seed.is_file().then_some(seed)
    })
}

/// Connects as `connect` says (the admin identity) and creates or updates every stream and
/// consumer of a deployment with `replicas`; what `orderflow nats provision` and `orderflow up`
/// run.
pub(crate) async fn provision_deployment(
    connect: &ConnectConfig,
    replicas: usize,
) -> anyhow::Result<orderflow_messaging::topology::ProvisionReport> {
    let client = orderflow_messaging::connect(connect).await.context("connecting to NATS as admin")?;
    let report = provision(&async_nats::jetstream::new(client.clone()), &Topology::deployment(replicas))
        .await
        .context("provisioning JetStream as admin")?;
    client.drain().await.context("closing the admin connection")?;
    Ok(report)
}

impl NatsArgs {
    /// Runs the subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            NatsCommand::Credentials { out, rotate, replicas } => {
                let rotate: Vec<&str> = rotate.iter().map(String::as_str).collect();
                if let Some(unknown) = rotate.iter().find(|r| !identity::ALL.contains(r)) {
                    anyhow::bail!("no identity {unknown:?}: one of {}", identity::ALL.join(", "));
                }
                let keys =
                    identity::ensure_credentials(&out, &Topology::deployment(replicas.max(1)), &rotate)
                        .with_context(|| format!("writing credentials into {}", out.display()))?;
                for key in &keys {
                    output::line(format_args!(
                        "{:<10} {}  {}",
                        key.identity,
                        key.public_key,
                        identity::seed_file(&out, &key.identity).display()
                    ))?;
                }
                output::line(format_args!(
                    "server: include {} in the nats-server configuration",
                    identity::auth_conf_file(&out).display()
                ))
            }
            NatsCommand::Provision { nats_url, creds, replicas, timeout_secs, nats_ca } => {
                let mut connect = ConnectConfig::new(nats_url, "orderflow/provision")
                    .with_creds(creds_or_up_default(creds))
                    .with_tls(orderflow_messaging::NatsTls { ca_file: nats_ca, ..Default::default() })
                    .as_identity(identity::ADMIN);
                connect.initial_timeout = Some(Duration::from_secs(timeout_secs.max(1)));
                let report = provision_deployment(&connect, replicas).await?;
                output::line(format_args!(
                    "provisioned: {} created, {} updated, the rest as specified",
                    report.created.len(),
                    report.updated.len()
                ))
            }
            NatsCommand::Permissions { identity: who } => {
                if !identity::ALL.contains(&who.as_str()) {
                    anyhow::bail!("no identity {who:?}: one of {}", identity::ALL.join(", "));
                }
                let p = identity::permissions(&who, &Topology::deployment(1));
                let show = |list: &Option<Vec<String>>| match list {
                    None => "  >  (anything)".to_owned(),
                    Some(l) => l.iter().map(|s| format!("  {s}")).collect::<Vec<_>>().join("\n"),
                };
                output::line(format_args!(
                    "{who} may publish:\n{}\n{who} may subscribe:\n{}",
                    show(&p.publish),
                    show(&p.subscribe)
                ))
            }
        }
    }
}
