//! `orderflow certs`: a development CA and the NATS server and client certificates it signs, as
//! PEM files for a local or compose cluster (deploy/nats/tls.conf reads them). Never overwrites
//! without `--force`; keys are written mode 0600.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

/// Flags of `orderflow certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory to write ca.pem, ca-key.pem, server.pem, server-key.pem, client.pem and
    /// client-key.pem into (created if missing).
    #[arg(long, default_value = "deploy/nats/certs")]
    out: PathBuf,
    /// Replace existing files (a new CA: every client must be given the new ca.pem).
    #[arg(long)]
    force: bool,
    /// Another name (DNS name, `*.` wildcard or IP address) the server certificate is valid for,
    /// besides localhost, 127.0.0.1, ::1, nats, nats-1..3, *.nats and the Kubernetes names.
    #[arg(long = "name", value_name = "NAME")]
    names: Vec<String>,
}

impl CertsArgs {
    /// Generates and writes the certificates, then says where they are and how to use them.
    pub fn run(self) -> anyhow::Result<()> {
        let mut names = orderflow_devcerts::default_server_names();
        for name in self.names {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let certs = orderflow_devcerts::DevCerts::generate(&names)?;
        let paths = certs
            .write(&self.out, self.force)
            .with_context(|| format!("writing the development certificates into {}", self.out.display()))?;
        crate::output::line(format!(
            "wrote a development CA and certificates into {dir}:\n  \
             {ca}  (trust it: NATS_CA={ca})\n  \
             {server}, {server_key}  (NATS servers: clients and routes; valid for {names})\n  \
             {client}, {client_key}  (client certificate for servers that verify clients: NATS_CERT, NATS_KEY)\n  \
             {ca_key}  (the CA's key: keep it off servers; only for issuing more)\n\
             Keys are mode 0600. For development only: see docs/SECURITY.md (TLS).",
            dir = self.out.display(),
            ca = paths.ca.display(),
            server = paths.server.display(),
            server_key = paths.server_key.display(),
            client = paths.client.display(),
            client_key = paths.client_key.display(),
            ca_key = paths.ca_key.display(),
            names = names.join(", "),
        ))
    }
}
