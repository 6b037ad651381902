//! The service processes of a verify run: `orderflow serve <role>` children that the suite
//! starts, kills with SIGKILL, restarts on the same port and database, and stops by pid, on
//! failure too (`kill_on_drop`).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// The last `lines` lines of the log at `path` (each cut at 400 characters), for an error
/// message: a CI run's logs are gone once it fails.
fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(text) = std::fs::read_to_string(path) else { return String::from("(no log)") };
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|line| format!("  {}", line.chars().take(400).collect::<String>()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What an instance runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The order API.
    Order,
    /// The inventory service.
    Inventory,
    /// The payment service.
    Payment,
    /// The gateway simulator.
    Gateway,
    /// The analytics service (the containers backend's stacks run it).
    Analytics,
}

impl Role {
    /// The `orderflow serve` argument, also the instance name's prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Order => "order",
            Self::Inventory => "inventory",
            Self::Payment => "payment",
            Self::Gateway => "gateway",
            Self::Analytics => "analytics",
        }
    }
}

/// One service instance.
#[derive(Debug)]
pub struct ServiceProc {
    /// `inventory-2`.
    pub name: String,
    /// What it runs.
    pub role: Role,
    /// Its HTTP port (the same on every start).
    pub port: u16,
    exe: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    /// How many times it was started.
    pub starts: u32,
}

impl ServiceProc {
    /// An instance that is not running yet. `args` follow `orderflow serve <role>`.
    pub fn new(
        exe: &Path,
        role: Role,
        index: usize,
        port: u16,
        args: Vec<String>,
        env: Vec<(String, String)>,
        log_dir: &Path,
    ) -> Self {
        let name = format!("{}-{index}", role.as_str());
        Self {
            log: log_dir.join(format!("{name}.log")),
            name,
            role,
            port,
            exe: exe.to_path_buf(),
            args,
            env,
            child: None,
            starts: 0,
        }
    }

    /// Sets an environment variable for its next start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => value.clone_into(&mut entry.1),
            None => self.env.push((key.to_owned(), value.to_owned())),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Whether a process was started and not killed or stopped since.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the process (its output appended to `<name>.log`) and waits until `/health/ready`
    /// answers 200.
    pub async fn start(&mut self, http: &reqwest::Client, ready_timeout: Duration) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "{} is already running", self.name);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let stderr = log.try_clone().with_context(|| format!("opening {}", self.log.display()))?;
        let child = Command::new(&self.exe)
            .arg("serve")
            .arg(self.role.as_str())
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!("starting {} ({} serve {})", self.name, self.exe.display(), self.role.as_str())
            })?;
        self.child = Some(child);
        self.starts += 1;
        let url = format!("{}/health/ready", self.url());
        let deadline = Instant::now() + ready_timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                anyhow::bail!(
                    "{} exited with {status} while starting; see {}",
                    self.name,
                    self.log.display()
                );
            }
            if let Ok(res) = http.get(&url).timeout(Duration::from_secs(2)).send().await
                && res.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "{} was not ready within {ready_timeout:?}; see {}; its last lines:\n{}",
                    self.name,
                    self.log.display(),
                    log_tail(&self.log, 12)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no drain, no goodbye; in-flight work is left to redelivery and the outbox.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `kill` sends SIGKILL and reaps the process.
            if let Err(error) = child.kill().await {
                tracing::warn!(instance = %self.name, %error, "could not kill");
            }
        }
    }

    /// SIGTERM (a graceful drain), then SIGKILL after `timeout`.
    pub async fn stop(&mut self, timeout: Duration) {
        let Some(mut child) = self.child.take() else { return };
        if let Some(pid) = child.id() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
            if tokio::time::timeout(timeout, child.wait()).await.is_ok() {
                return;
            }
            tracing::warn!(instance = %self.name, "still running {timeout:?} after SIGTERM; killing it");
        }
        let _ = child.kill().await;
    }

    /// The process's exit status if it ended on its own (a crash), and forgets it.
    pub fn crashed(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())?;
        self.child = None;
        Some(status)
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }
}
