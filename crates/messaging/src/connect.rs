//! Connecting to NATS: exponential backoff with jitter on the first connect and on every
//! reconnect, reconnecting forever, every connection event logged.
//!
//! Both schedules are the one [`Backoff`] of `orderflow-resilience`, shaped by
//! `ConnectConfig::backoff`. The first connect gives up after `initial_timeout` (60 s by default:
//! an operator tool should say that NATS is unreachable rather than hang); a service waits
//! forever instead ([`ConnectConfig::with_initial_timeout`]`(None)`), reporting each failed
//! attempt to its readiness through [`connect_observed`], so that a container started before
//! NATS waits instead of exiting and being restarted in a loop. Whatever the timeout, a refused
//! identity ([`ConnectError::NotAuthorized`]), unusable credentials or TLS files, and a TLS
//! handshake that fails on a certificate are not retried: they fail at once.
//!
//! Credentials in a server URL (`nats://user:password@host`, or `nats://token@host`) are taken
//! out of it and given to the client as options: async-nats does not read them from the URL
//! (nats.rs #1623), and it logs the URLs it connects to (DEBUG) — so do we (INFO) — which must
//! never show a password. Every URL this module logs or puts in an error is the stripped one.
//!
//! TLS ([`NatsTls`]): a CA to trust instead of the system's roots, a client certificate for
//! servers that verify clients, and whether TLS is required. Any of them makes TLS required, so a
//! server that stops offering TLS is refused instead of talked to in plain text. A handshake that
//! fails on a certificate (unknown authority, wrong name, expired, client certificate refused) is
//! not retried: it is [`ConnectError::Tls`] at once, naming the cause and the setting to check,
//! rather than a timeout after a minute of retries.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, Event, ReconnectToServer, Server, ServerAddr, ServerInfo};
use orderflow_resilience::{Backoff, BackoffConfig, BackoffConfigError};
use tokio::sync::watch;

/// How to reach NATS. `Debug` shows the URLs without their credentials.
#[derive(Clone)]
pub struct ConnectConfig {
    /// Server URL(s), comma-separated (`nats://127.0.0.1:4222,nats://…`).
    pub(crate) url: String,
    /// Client name shown by the server (`orderflow/order-service`).
    pub(crate) name: String,
    /// First backoff delay.
    pub(crate) min_backoff: Duration,
    /// Backoff ceiling.
    pub max_backoff: Duration,
    /// Give up the first connect after this long; `None` retries forever (services: see
    /// [`Self::with_initial_timeout`]).
    pub initial_timeout: Option<Duration>,
    /// Timeout of JetStream API requests and PubAcks.
    pub request_timeout: Duration,
    /// A NATS credentials file (`.creds`: JWT and seed) or an nkey seed file (`SU…`) to
    /// authenticate with; `None` connects anonymously (or with credentials in the URL).
    pub(crate) creds: Option<PathBuf>,
    /// The prefix of the client's reply subjects (`_INBOX_order`), which an identity's
    /// permissions limit it to; `None` keeps the client's `_INBOX`.
    pub(crate) inbox_prefix: Option<String>,
    /// TLS settings; the default is none (plain unless the server requires TLS).
    pub(crate) tls: NatsTls,
}

/// How a client uses TLS to NATS (`nats_ca`, `nats_cert`, `nats_key`, `nats_tls_required`).
///
/// With none set, the client follows the server: TLS (verified against the system's roots) if
/// the server requires it, plain otherwise. Setting any of them makes TLS required.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatsTls {
    /// PEM file of the CA(s) to trust instead of the system's roots (`NATS_CA`).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for servers that verify clients (`verify: true`).
    pub cert_file: Option<PathBuf>,
    /// The client certificate's PEM private key.
    pub key_file: Option<PathBuf>,
    /// Refuse a server that does not offer TLS.
    pub required: bool,
}

impl NatsTls {
    /// Whether TLS is required: asked for, or implied by a CA or a client certificate.
    pub fn is_required(&self) -> bool {
        self.required || self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }

    /// `options` with these settings: the CA, the client certificate, TLS required. For tools
    /// that build their own async-nats options (`orderflow dlq`); [`connect`] applies them itself.
    pub fn apply_to(&self, mut options: ConnectOptions) -> ConnectOptions {
        if let Some(ca) = &self.ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        options.require_tls(self.is_required())
    }

    /// The settings these are read from, for error messages.
    fn hint(&self, cause: TlsCause) -> &'static str {
        match cause {
            TlsCause::ServerCertificate if self.ca_file.is_some() => {
                "check NATS_CA: it must be the CA that signed the server's certificate"
            }
            TlsCause::ServerCertificate => {
                "the server's certificate is not trusted by the system's roots; set NATS_CA to its CA"
            }
            TlsCause::ServerName => "connect by a host name the server's certificate lists",
            TlsCause::ClientCertificate => {
                "the server verifies clients: check nats_cert / nats_key (a certificate signed by the server's ca_file)"
            }
            TlsCause::Setup => "check the files named by NATS_CA, nats_cert and nats_key",
            TlsCause::Other => "check the server's TLS settings and NATS_CA",
        }
    }
}

impl std::fmt::Debug for ConnectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectConfig")
            .field("url", &split_credentials(&self.url).0.join(","))
            .field("name", &self.name)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("initial_timeout", &self.initial_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("creds", &self.creds)
            .field("inbox_prefix", &self.inbox_prefix)
            .field("tls", &self.tls)
            .finish()
    }
}

impl ConnectConfig {
    /// Defaults: 100 ms doubling to 5 s, first connect retried for 60 s (what a tool wants;
    /// a service retries forever, [`Self::with_initial_timeout`]).
    pub fn new(url: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name: name.into(),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            initial_timeout: Some(Duration::from_secs(60)),
            request_timeout: Duration::from_secs(10),
            creds: None,
            inbox_prefix: None,
            tls: NatsTls::default(),
        }
    }

    /// These settings with TLS as `tls` says.
    pub fn with_tls(mut self, tls: NatsTls) -> Self {
        self.tls = tls;
        self
    }

    /// Gives up the first connect after `timeout`, or never with `None`: a service waits for NATS
    /// as long as it takes (its readiness says what it waits for), where a tool run by hand keeps
    /// the bounded default and reports [`ConnectError::Unreachable`].
    pub fn with_initial_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.initial_timeout = timeout;
        self
    }

    /// Authenticates with the credentials or nkey seed file `creds` (if any).
    pub fn with_creds(mut self, creds: Option<PathBuf>) -> Self {
        self.creds = creds;
        self
    }

    /// Connects as `identity` ([`crate::identity`]): its reply subjects under its own inbox
    /// prefix, which its permissions allow and no other identity's do.
    pub fn as_identity(mut self, identity: &str) -> Self {
        self.inbox_prefix = Some(crate::identity::inbox_prefix(identity));
        self
    }

    /// Whether it authenticates with a credentials file.
    pub fn has_creds(&self) -> bool {
        self.creds.is_some()
    }
    /// The retry schedule of the first connect: doubling from `min_backoff` to `max_backoff`,
    /// up to half of each delay random so a fleet does not reconnect in lock-step, given up after
    /// `initial_timeout`. Reconnects follow the same delays without the time limit.
    pub(crate) fn backoff(&self) -> BackoffConfig {
        BackoffConfig {
            initial: self.min_backoff,
            max: self.max_backoff,
            multiplier: 2.0,
            jitter: 0.5,
            max_elapsed: self.initial_timeout,
        }
    }
}

/// Why the first connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No server answered within `initial_timeout`.
    #[error("could not connect to NATS at {url} after {attempts} attempts: {source}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// Attempts made.
        attempts: usize,
        /// The last error.
        #[source]
        source: async_nats::ConnectError,
    },
    /// `min_backoff`, `max_backoff` or `initial_timeout` make no schedule (zero, or the ceiling
    /// below the first delay); nothing was tried.
    #[error("invalid NATS connect backoff: {0}")]
    InvalidBackoff(#[from] BackoffConfigError),
    /// The TLS handshake failed on a certificate, or the TLS files could not be used: not
    /// retried, since trying again would fail the same way.
    #[error("TLS handshake with {url} failed: {reason} ({hint})")]
    Tls {
        /// The URL(s) tried.
        url: String,
        /// What failed (`certificate signed by an unknown authority`).
        reason: String,
        /// Which setting to check.
        hint: &'static str,
        /// The client's error.
        #[source]
        source: async_nats::ConnectError,
    },
    /// A client certificate without its key, or a key without its certificate.
    #[error("NATS TLS: nats_cert and nats_key must be set together")]
    IncompleteClientCertificate,
    /// The credentials file could not be read or holds neither a JWT nor a user seed.
    #[error("NATS credentials {path}: {source}")]
    Credentials {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: std::io::Error,
    },
    /// The server refused the credentials (or their absence): retrying cannot help.
    #[error("NATS at {url} refused the connection: {source} (check NATS_CREDS / nats_creds)")]
    NotAuthorized {
        /// The URL tried.
        url: String,
        /// The server's answer.
        #[source]
        source: async_nats::ConnectError,
    },
}

/// `options` authenticating with `path`: a NATS credentials file (a user JWT and its seed, as
/// `nsc` writes them) or a file holding just a user nkey seed (`SU…`, as
/// `orderflow nats credentials` writes them).
pub fn with_credentials(options: ConnectOptions, path: &Path) -> Result<ConnectOptions, ConnectError> {
    let err = |source| ConnectError::Credentials { path: path.to_path_buf(), source };
    let text = std::fs::read_to_string(path).map_err(err)?;
    if text.contains("BEGIN NATS USER JWT") {
        return options.credentials(&text).map_err(err);
    }
    let seed = text.trim();
    if !seed.starts_with("SU") || seed.lines().count() != 1 {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "neither a credentials file (user JWT + seed) nor a user nkey seed (SU…)",
        )));
    }
    Ok(options.nkey(seed.to_owned()))
}

/// The options of a one-off client (an operator tool, a check): TLS as `tls` says, authenticated
/// with the credentials or seed file `creds` when given. Services connect through [`connect`].
pub fn tool_options(creds: Option<&Path>, tls: &NatsTls) -> Result<ConnectOptions, ConnectError> {
    let options = tls.apply_to(ConnectOptions::new());
    match creds {
        Some(path) => with_credentials(options, path),
        None => Ok(options),
    }
}

/// The delay before reconnect attempt `attempt` (0-based): exponential, capped, with up to half
/// of it random so a fleet does not reconnect in lock-step.
pub(crate) fn reconnect_delay(attempt: usize, min: Duration, max: Duration) -> Duration {
    let schedule = BackoffConfig { initial: min, max, max_elapsed: None, ..BackoffConfig::default() };
    schedule.delay(u32::try_from(attempt).unwrap_or(u32::MAX), fastrand::f64())
}

/// A failed attempt of the first connect, about to be retried: what [`connect_observed`] reports.
#[derive(Debug)]
pub struct ConnectRetry<'a> {
    /// The server URL(s) tried, without credentials.
    pub url: &'a str,
    /// Attempts made so far (1 after the first failure).
    pub attempt: usize,
    /// Why the attempt failed.
    pub error: &'a async_nats::ConnectError,
    /// The wait before the next attempt.
    pub retry_in: Duration,
}

/// Connects with backoff and jitter, then keeps reconnecting forever.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let cfg = orderflow_messaging::ConnectConfig::new("nats://127.0.0.1:4222", "orderflow/demo");
/// let client = orderflow_messaging::connect(&cfg).await?;
/// # Ok(()) }
/// ```
pub async fn connect(cfg: &ConnectConfig) -> Result<Client, ConnectError> {
    connect_observed(cfg, |_| {}).await
}

/// [`connect`], calling `on_retry` after each failed attempt that will be retried (each is also
/// logged at WARN): how a service tells its readiness probe what it is waiting for.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let cfg = orderflow_messaging::ConnectConfig::new("nats://nats:4222", "orderflow/demo")
///     .with_initial_timeout(None);
/// let client = orderflow_messaging::connect::connect_observed(&cfg, |retry| {
///     eprintln!("waiting for NATS at {} (attempt {}): {}", retry.url, retry.attempt, retry.error);
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn connect_observed(
    cfg: &ConnectConfig,
    mut on_retry: impl FnMut(&ConnectRetry<'_>) + Send,
) -> Result<Client, ConnectError> {
    let mut backoff = Backoff::new(cfg.backoff())?;
    if cfg.tls.cert_file.is_some() != cfg.tls.key_file.is_some() {
        return Err(ConnectError::IncompleteClientCertificate);
    }
    // A comma-separated list names several servers of a cluster; any of them will do.
    let (servers, credentials) = split_credentials(&cfg.url);
    let url = servers.join(",");
    // Read once: a missing or malformed file fails now, not after a minute of retries.
    if let Some(path) = &cfg.creds {
        with_credentials(ConnectOptions::new(), path)?;
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut options = options(cfg, &url);
        if let Some(path) = &cfg.creds {
            options = with_credentials(options, path)?;
        }
        options = match &credentials {
            Some(Credentials::UserPassword(user, password)) => {
                options.user_and_password(user.clone(), password.clone())
            }
            Some(Credentials::Token(token)) => options.token(token.clone()),
            None => options,
        };
        let err = match options.connect(servers.as_slice()).await {
            Ok(client) => return Ok(client),
            Err(err) if err.kind() == async_nats::ConnectErrorKind::AuthorizationViolation => {
                return Err(ConnectError::NotAuthorized { url, source: err });
            }
            Err(err) => err,
        };
        if let Some((cause, reason)) = tls_failure(&err) {
            return Err(ConnectError::Tls { url, reason, hint: cfg.tls.hint(cause), source: err });
        }
        let Some(delay) = backoff.next_delay() else {
            return Err(ConnectError::Unreachable { url, attempts, source: err });
        };
        tracing::warn!(%url, attempt = attempts, error = %err, retry_in = ?delay, "NATS not reachable yet");
        on_retry(&ConnectRetry { url: &url, attempt: attempts, error: &err, retry_in: delay });
        tokio::time::sleep(delay).await;
    }
}

/// What a failed TLS handshake was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TlsCause {
    /// The server's certificate does not verify against the trusted roots.
    ServerCertificate,
    /// The server's certificate is for other names.
    ServerName,
    /// The server refused our client certificate (or wanted one).
    ClientCertificate,
    /// The CA, certificate or key file could not be read or parsed.
    Setup,
    /// Another TLS failure.
    Other,
}

/// The TLS cause of a failed connect, with a reason for people, if it is one that retrying will
/// not fix: a certificate that does not verify, a client certificate the server refused, TLS
/// files that cannot be used. async-nats reports a failed handshake as an I/O error with the
/// rustls error inside, and a bad TLS setup as `ConnectErrorKind::Tls`.
fn tls_failure(err: &async_nats::ConnectError) -> Option<(TlsCause, String)> {
    use async_nats::rustls::{AlertDescription, CertificateError, Error as TlsError};
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        let found = e.downcast_ref::<TlsError>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<TlsError>())
        });
        if let Some(tls) = found {
            return match tls {
                TlsError::InvalidCertificate(cert) => Some(match cert {
                    CertificateError::UnknownIssuer => {
                        (TlsCause::ServerCertificate, "certificate signed by an unknown authority".to_owned())
                    }
                    // A CA of the issuer's name, but not the one that signed it.
                    CertificateError::BadSignature => (
                        TlsCause::ServerCertificate,
                        "certificate signed by an unknown authority (a trusted CA has its issuer's name, not its key)"
                            .to_owned(),
                    ),
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                        (TlsCause::ServerName, format!("certificate not valid for this host name ({cert})"))
                    }
                    CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                        (TlsCause::ServerCertificate, format!("the server's certificate has expired ({cert})"))
                    }
                    other => (TlsCause::ServerCertificate, format!("invalid server certificate: {other}")),
                }),
                TlsError::AlertReceived(
                    alert @ (AlertDescription::CertificateRequired
                    | AlertDescription::BadCertificate
                    | AlertDescription::UnknownCA
                    | AlertDescription::CertificateUnknown
                    | AlertDescription::UnsupportedCertificate
                    | AlertDescription::CertificateExpired
                    | AlertDescription::CertificateRevoked
                    | AlertDescription::AccessDenied),
                ) => Some((TlsCause::ClientCertificate, format!("the server refused the client certificate ({alert:?})"))),
                other => Some((TlsCause::Other, other.to_string())),
            };
        }
        current = e.source();
    }
    (err.kind() == async_nats::ConnectErrorKind::Tls).then(|| (TlsCause::Setup, format!("TLS setup: {err}")))
}

/// Counts the connects and disconnects of every client this process made with [`connect`].
static CONNECTION_CHANGES: OnceLock<watch::Sender<u64>> = OnceLock::new();

fn connection_changes_sender() -> &'static watch::Sender<u64> {
    CONNECTION_CHANGES.get_or_init(|| watch::channel(0).0)
}

fn connection_changed() {
    connection_changes_sender().send_modify(|n| *n = n.wrapping_add(1));
}

/// Which connection of a client something was sent on (a publish, a pull request), to tell when
/// it is gone: an answer due on it will never arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConnectionMark {
    connects: u64,
}

impl ConnectionMark {
    /// The connection `client` is on now.
    pub(crate) fn of(client: &Client) -> Self {
        Self { connects: client.statistics().connects.load(Ordering::Relaxed) }
    }

    fn gone(self, client: &Client) -> bool {
        client.connection_state() != State::Connected
            || client.statistics().connects.load(Ordering::Relaxed) != self.connects
    }

    /// Resolves once that connection is gone: the client is not connected, or has connected
    /// again since. Woken by the clients' connection events, not by polling.
    pub(crate) async fn lost(self, client: &Client) {
        let mut changes = connection_changes_sender().subscribe();
        loop {
            if self.gone(client) {
                return;
            }
            if changes.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

/// Resolves once `client` is connected (at once if it is). Woken by the connection events, and
/// looking again every 100 ms, since an event may come a moment before the state it reports.
pub(crate) async fn connected(client: &Client) {
    let mut changes = connection_changes_sender().subscribe();
    while client.connection_state() != State::Connected {
        let _ = tokio::time::timeout(Duration::from_millis(100), changes.changed()).await;
    }
}

/// What a server URL's user-info says: `user:password`, or a bare token.
enum Credentials {
    UserPassword(String, String),
    Token(String),
}

/// The server URLs without their user-info, and the credentials the first URL that had any
/// carried (percent-decoded). A cluster's servers share one identity; a URL with other
/// credentials than the first is connected to with the first's.
fn split_credentials(urls: &str) -> (Vec<String>, Option<Credentials>) {
    let mut credentials = None;
    let servers = server_list(urls)
        .into_iter()
        .map(|url| {
            let scheme_end = url.find("://").map_or(0, |i| i + 3);
            let rest = &url[scheme_end..];
            // The user-info ends at the last `@` before the path.
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let Some(at) = rest[..authority_end].rfind('@') else { return url };
            let userinfo = &rest[..at];
            if credentials.is_none() {
                credentials = Some(match userinfo.split_once(':') {
                    Some((user, password)) => {
                        Credentials::UserPassword(percent_decode(user), percent_decode(password))
                    }
                    None => Credentials::Token(percent_decode(userinfo)),
                });
            }
            format!("{}{}", &url[..scheme_end], &rest[at + 1..])
        })
        .collect();
    (servers, credentials)
}

/// `%40` → `@`; anything that is not a valid escape stays as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `nats://a:4222, nats://b:4222` → `["nats://a:4222", "nats://b:4222"]`.
pub fn server_list(urls: &str) -> Vec<String> {
    urls.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect()
}

/// Where to reconnect: a server with the fewest failed attempts, and among those one other
/// than the server just left. The client's own choice is random and may go straight back to a
/// node that was killed a moment ago (its connect then fails, after up to the connection
/// timeout for a frozen one) or to one that has just restarted and cannot yet route publishes
/// to the streams ("no responders"). `None` (the client's choice) for a single server.
fn next_server(servers: &[Server], last: &ServerInfo) -> Option<ServerAddr> {
    if servers.len() < 2 {
        return None;
    }
    let was_last = |s: &Server| {
        s.addr.port() == last.port
            && (s.addr.host() == last.host
                || last.host.parse().is_ok_and(|ip: std::net::IpAddr| ip.is_unspecified()))
    };
    servers.iter().min_by_key(|s| (s.failed_attempts, was_last(s), fastrand::u32(..))).map(|s| s.addr.clone())
}

/// The client's options; `url` (without credentials) is what its events are logged with.
fn options(cfg: &ConnectConfig, url: &str) -> ConnectOptions {
    let reconnect = BackoffConfig { max_elapsed: None, ..cfg.backoff() };
    let url = url.to_owned();
    let options = match &cfg.inbox_prefix {
        Some(prefix) => ConnectOptions::new().custom_inbox_prefix(prefix),
        None => ConnectOptions::new(),
    };
    cfg.tls
        .apply_to(options)
        .name(&cfg.name)
        .max_reconnects(None)
        .request_timeout(Some(cfg.request_timeout))
        .connection_timeout(Duration::from_secs(5))
        // A hung server (a frozen process, a half-open TCP connection) is noticed when two pings
        // go unanswered: within ~30 s at this interval instead of ~2 min at the default 60 s;
        // the client then reconnects to another node of the cluster.
        .ping_interval(Duration::from_secs(10))
        .reconnect_delay_callback(move |attempt| {
            reconnect.delay(u32::try_from(attempt).unwrap_or(u32::MAX), fastrand::f64())
        })
        .reconnect_to_server_callback(|servers, last| async move {
            next_server(&servers, &last).map(|addr| ReconnectToServer { addr, delay: None })
        })
        .event_callback(move |event| {
            let url = url.clone();
            async move {
                match event {
                    Event::Connected => {
                        connection_changed();
                        tracing::info!(%url, "NATS connected");
                    }
                    Event::Disconnected => {
                        connection_changed();
                        tracing::warn!(%url, "NATS disconnected; reconnecting");
                    }
                    Event::LameDuckMode => tracing::warn!(%url, "NATS server entering lame duck mode"),
                    Event::SlowConsumer(sid) => tracing::warn!(%url, sid, "NATS slow consumer"),
                    other => tracing::info!(%url, event = %other, "NATS connection event"),
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_separated_url_names_every_server() {
        assert_eq!(server_list("nats://a:4222, nats://b:4222,,"), ["nats://a:4222", "nats://b:4222"]);
        assert_eq!(server_list("nats://a:4222"), ["nats://a:4222"]);
    }

    #[test]
    fn credentials_are_taken_out_of_the_urls_and_kept_out_of_debug_output() {
        let (servers, credentials) =
            split_credentials("nats://svc:p%40ss:w@a:4222, nats://svc:p%40ss:w@b:4222/x, nats://c:4222");

        assert_eq!(servers, ["nats://a:4222", "nats://b:4222/x", "nats://c:4222"]);
        assert!(matches!(credentials, Some(Credentials::UserPassword(u, p)) if u == "svc" && p == "p@ss:w"));
        let (servers, token) = split_credentials("tok3n@127.0.0.1:4222");
        assert_eq!(servers, ["127.0.0.1:4222"]);
        assert!(matches!(token, Some(Credentials::Token(t)) if t == "tok3n"));
        assert!(split_credentials("nats://a:4222").1.is_none());
        let debug = format!("{:?}", ConnectConfig::new("nats://svc:S3cret@a:4222", "orderflow/test"));
        assert!(!debug.contains("S3cret") && debug.contains("nats://a:4222"), "{debug}");
    }

    #[test]
    fn reconnect_delay_grows_and_is_capped() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        for attempt in 0..40 {
            let d = reconnect_delay(attempt, min, max);
            assert!(d <= max, "attempt {attempt}: {d:?}");
            assert!(d >= min / 2, "attempt {attempt}: {d:?}");
        }
        assert!(reconnect_delay(30, min, max) >= max / 2);
    }

    #[test]
    fn the_connect_backoff_is_shaped_by_the_connect_settings() {
        let mut cfg = ConnectConfig::new("nats://a:4222", "orderflow/test");
        cfg.min_backoff = Duration::from_millis(50);
        cfg.max_backoff = Duration::from_millis(800);
        cfg.initial_timeout = None;

        let backoff = cfg.backoff();

        assert_eq!(backoff.validate(), Ok(()));
        assert_eq!(
            (backoff.initial, backoff.max, backoff.max_elapsed),
            (cfg.min_backoff, cfg.max_backoff, None)
        );
        assert_eq!(ConnectConfig::new("u", "n").backoff().max_elapsed, Some(Duration::from_secs(60)));
        let forever = ConnectConfig::new("u", "n").with_initial_timeout(None);
        assert_eq!(forever.backoff().max_elapsed, None);
        assert_eq!(forever.backoff().validate(), Ok(()));
    }

    fn pool(ports: &[u16]) -> Vec<Server> {
        ports
            .iter()
            .map(|port| Server {
                addr: format!("nats://127.0.0.1:{port}").parse().unwrap_or_else(|e| panic!("{e}")),
                failed_attempts: 0,
                did_connect: true,
                is_discovered: false,
                last_error: None,
            })
            .collect()
    }

    fn info(host: &str, port: u16) -> ServerInfo {
        ServerInfo { host: host.into(), port, ..ServerInfo::default() }
    }

    #[test]
    fn a_reconnect_goes_to_another_node_than_the_one_just_left() {
        let servers = pool(&[4222, 4223, 4224]);
        for _ in 0..50 {
            let next = next_server(&servers, &info("127.0.0.1", 4223)).map(|a| a.port());
            assert!(matches!(next, Some(4222 | 4224)), "{next:?}");
        }
    }

    #[test]
    fn a_node_that_keeps_failing_is_tried_after_the_one_just_left() {
        let mut servers = pool(&[4222, 4223, 4224]);
        servers[0].failed_attempts = 3;
        servers[2].failed_attempts = 1;
        let next = next_server(&servers, &info("127.0.0.1", 4223)).map(|a| a.port());
        assert_eq!(next, Some(4223));
        assert_eq!(next_server(&pool(&[4222]), &info("127.0.0.1", 4222)), None);
    }

    #[tokio::test]
    async fn a_backoff_ceiling_below_its_first_delay_fails_before_any_attempt() {
        let mut cfg = ConnectConfig::new("nats://127.0.0.1:1", "orderflow/test");
        cfg.max_backoff = Duration::from_millis(10);

        let result = connect(&cfg).await;

        assert!(matches!(
            result,
            Err(ConnectError::InvalidBackoff(BackoffConfigError::MaxBelowInitial { .. }))
        ));
    }
}
