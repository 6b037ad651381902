//! A development certificate authority and the certificates it signs: one server certificate
//! (for NATS clients and for the routes between cluster nodes) and one client certificate (for
//! mutual TLS), as PEM files.
//!
//! `orderflow certs` writes them for a local or compose cluster, and tests make throw-away ones.
//! It owns nothing else: it never reads certificates back, never talks TLS, and never overwrites a
//! file unless asked to. The CA's key is written beside the certificates so that more can be
//! issued later; it is for development, so a production deployment takes its certificates from
//! its own CA instead (docs/SECURITY.md, TLS).
//!
//! ```no_run
//! # fn f() -> Result<(), orderflow_devcerts::Error> {
//! let certs = orderflow_devcerts::DevCerts::generate(&orderflow_devcerts::default_server_names())?;
//! let paths = certs.write(std::path::Path::new("deploy/nats/certs"), false)?;
//! println!("CA: {}", paths.ca.display());
//! # Ok(()) }
//! ```

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// The names the server certificate is valid for unless told otherwise: loopback, and the host
/// names of the compose cluster (`nats-1`…`nats-3`) and of a Kubernetes headless service `nats`
/// (`nats-0.nats`, `nats-0.nats.orderflow.svc.cluster.local`).
pub fn default_server_names() -> Vec<String> {
    [
        "localhost",
        "127.0.0.1",
        "::1",
        "nats",
        "nats-1",
        "nats-2",
        "nats-3",
        "*.nats",
        "nats.orderflow.svc",
        "*.nats.orderflow.svc",
        "*.nats.orderflow.svc.cluster.local",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// How long the CA is valid.
const CA_VALIDITY: Duration = Duration::days(5 * 365);
/// How long a leaf certificate is valid: rotate by issuing new ones before then.
const LEAF_VALIDITY: Duration = Duration::days(365);

/// Why the certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// rcgen refused a name or failed to sign.
    #[error("generating the certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// Some of the files exist already and overwriting was not asked for.
    #[error("{} already exist(s); pass --force to replace them", list(.0))]
    Exists(Vec<PathBuf>),
    /// A file or the directory could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn list(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// A CA and the certificates it signed, PEM-encoded. `Debug` leaves the keys out.
pub struct DevCerts {
    /// The CA certificate: what clients and servers trust (`NATS_CA`, `ca_file`).
    pub ca_pem: String,
    /// The CA's private key.
    pub ca_key_pem: String,
    /// The server certificate (server and client authentication: it also authenticates a
    /// cluster node to the others on routes).
    pub server_pem: String,
    /// The server certificate's key.
    pub server_key_pem: String,
    /// A client certificate (client authentication only), for servers that `verify` clients.
    pub client_pem: String,
    /// The client certificate's key.
    pub client_key_pem: String,
}

impl std::fmt::Debug for DevCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCerts").finish_non_exhaustive()
    }
}

/// Where [`DevCerts::write`] put each file.
#[derive(Clone, Debug)]
pub struct CertPaths {
    /// `ca.pem`
    pub ca: PathBuf,
    /// `ca-key.pem` (mode 0600)
    pub ca_key: PathBuf,
    /// `server.pem`
    pub server: PathBuf,
    /// `server-key.pem` (mode 0600)
    pub server_key: PathBuf,
    /// `client.pem`
    pub client: PathBuf,
    /// `client-key.pem` (mode 0600)
    pub client_key: PathBuf,
}

impl CertPaths {
    /// The file names under `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            server: dir.join("server.pem"),
            server_key: dir.join("server-key.pem"),
            client: dir.join("client.pem"),
            client_key: dir.join("client-key.pem"),
        }
    }

    fn all(&self) -> [&PathBuf; 6] {
        [&self.ca, &self.ca_key, &self.server, &self.server_key, &self.client, &self.client_key]
    }
}

impl DevCerts {
    /// A new CA (`orderflow development CA <id>`), a server certificate for `server_names` (DNS names,
    /// `*.` wildcards and IP addresses) and a client certificate (`CN=orderflow`), all with fresh
    /// ECDSA P-256 keys.
    pub fn generate(server_names: &[String]) -> Result<Self, Error> {
        let now = OffsetDateTime::now_utc();
        // A little slack for clocks that are behind.
        let not_before = now - Duration::hours(1);

        let ca_key = KeyPair::generate()?;
        // Each CA's name is its own (a piece of its public key), so that a certificate from
        // another run's CA is reported as from an unknown authority, not as a bad signature of
        // a CA with the same name.
        let id: String = ca_key.public_key_raw().iter().skip(1).take(4).map(|b| format!("{b:02x}")).collect();
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.distinguished_name.push(DnType::CommonName, format!("orderflow development CA {id}"));
        ca_params.distinguished_name.push(DnType::OrganizationName, "orderflow");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.not_before = not_before;
        ca_params.not_after = now + CA_VALIDITY;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca_key_pem = ca_key.serialize_pem();
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = |names: Vec<String>, cn: &str, usages: Vec<ExtendedKeyUsagePurpose>| {
            let mut params = CertificateParams::new(names)?;
            params.distinguished_name.push(DnType::CommonName, cn);
            params.distinguished_name.push(DnType::OrganizationName, "orderflow");
            params.use_authority_key_identifier_extension = true;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = usages;
            params.not_before = not_before;
            params.not_after = now + LEAF_VALIDITY;
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &issuer)?;
            Ok::<_, Error>((cert.pem(), key.serialize_pem()))
        };
        let (server_pem, server_key_pem) = leaf(
            server_names.to_vec(),
            server_names.first().map_or("orderflow server", String::as_str),
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        )?;
        let (client_pem, client_key_pem) =
            leaf(Vec::new(), "orderflow", vec![ExtendedKeyUsagePurpose::ClientAuth])?;
        Ok(Self { ca_pem: ca_cert.pem(), ca_key_pem, server_pem, server_key_pem, client_pem, client_key_pem })
    }

    /// Writes the six files into `dir` (created if missing): certificates readable by all, keys
    /// mode 0600. Refuses with [`Error::Exists`], writing nothing, when any of them is there
    /// already, unless `force`.
    pub fn write(&self, dir: &Path, force: bool) -> Result<CertPaths, Error> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let paths = CertPaths::in_dir(dir);
        if !force {
            let existing: Vec<PathBuf> = paths.all().into_iter().filter(|p| p.exists()).cloned().collect();
            if !existing.is_empty() {
                return Err(Error::Exists(existing));
            }
        }
        let files = [
            (&paths.ca, &self.ca_pem, false),
            (&paths.ca_key, &self.ca_key_pem, true),
            (&paths.server, &self.server_pem, false),
            (&paths.server_key, &self.server_key_pem, true),
            (&paths.client, &self.client_pem, false),
            (&paths.client_key, &self.client_key_pem, true),
        ];
        for (path, contents, secret) in files {
            write_file(path, contents, secret, force).map_err(io(path))?;
        }
        Ok(paths)
    }
}

/// Writes `contents` to `path`, mode 0600 for a `secret` (also when replacing a file that had
/// looser permissions), 0644 otherwise.
fn write_file(path: &Path, contents: &str, secret: bool, replace: bool) -> std::io::Result<()> {
    let mode = if secret { 0o600 } else { 0o644 };
    let mut options = fs::OpenOptions::new();
    options.write(true);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(mode);
        let mut file = options.open(path)?;
        // `mode` applies only to a file that is created.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        let mut file = options.open(path)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_files_are_written_once_with_private_keys_and_replaced_only_when_forced() {
        let dir = tempfile::tempdir().unwrap();
        let certs = DevCerts::generate(&default_server_names()).unwrap();

        let paths = certs.write(dir.path(), false).unwrap();

        assert!(fs::read_to_string(&paths.ca).unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(fs::read_to_string(&paths.server_key).unwrap().contains("PRIVATE KEY"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for key in [&paths.ca_key, &paths.server_key, &paths.client_key] {
                assert_eq!(fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600, "{key:?}");
            }
        }
        let again = DevCerts::generate(&default_server_names()).unwrap();
        assert!(matches!(again.write(dir.path(), false), Err(Error::Exists(p)) if p.len() == 6));
        assert_eq!(fs::read_to_string(&paths.ca).unwrap(), certs.ca_pem);
        again.write(dir.path(), true).unwrap();
        assert_eq!(fs::read_to_string(&paths.ca).unwrap(), again.ca_pem);
    }

    #[test]
    fn debug_output_has_no_keys() {
        let certs = DevCerts::generate(&["localhost".to_owned()]).unwrap();
        assert!(!format!("{certs:?}").contains("PRIVATE"));
    }
}
