//! `orderflow db grant`: a per-service PostgreSQL role owning its schema and nothing else
//! ([`orderflow_platform::roles`]), run once per service by an administrator before the
//! services start.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::output;

/// Flags of `orderflow db`.
#[derive(Debug, Args)]
pub struct DbArgs {
    #[command(subcommand)]
    command: DbCommand,
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Create or update a service's login role, owning its schema (created if missing) and
    /// allowed nothing else in the database. Idempotent; running it again sets the password.
    Grant {
        /// An administrating role's URL (a superuser, or CREATEROLE and owner of the database).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// The service's role, e.g. `orderflow_order`.
        #[arg(long)]
        role: String,
        /// The service's schema: `orders`, `inventory`, `payments` or `analytics` by default.
        #[arg(long)]
        schema: String,
        /// A file holding the role's password (e.g. a mounted secret).
        #[arg(long, conflicts_with = "password")]
        password_file: Option<PathBuf>,
        /// The role's password.
        #[arg(long, env = "ORDERFLOW_DB_ROLE_PASSWORD", hide_env_values = true)]
        password: Option<orderflow_platform::http::Secret>,
    },
}

impl DbArgs {
    /// Runs the subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            DbCommand::Grant { database_url, role, schema, password_file, password } => {
                let password = match (password_file, password) {
                    (Some(file), _) => std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?
                        .trim_end_matches(['\n', '\r'])
                        .to_owned(),
                    (None, Some(secret)) => secret.expose().to_owned(),
                    (None, None) => anyhow::bail!(
                        "give the role's password: --password-file or ORDERFLOW_DB_ROLE_PASSWORD"
                    ),
                };
                anyhow::ensure!(password.len() >= 12, "the role's password must have at least 12 characters");
                orderflow_platform::roles::grant_service_role(&database_url, &role, &password, &schema)
                    .await
                    .with_context(|| format!("granting {role} the schema {schema}"))?;
                output::line(format_args!("{role}: owns schema {schema}, nothing else"))
            }
        }
    }
}
