//! `cargo xtask <task>`: the project's automation, in Rust instead of shell glue.
//!
//! - `test`: makes sure the real infrastructure the tests need is there, installing or starting
//!   what is missing (cargo-nextest, a nats-server >= 2.12, PostgreSQL, chromium: see [`setup`]), then runs
//!   the doc tests and every other test (`cargo nextest run --workspace`).
//! - `schemas`: regenerates the committed JSON Schemas and `asyncapi.yaml` in `schemas/`.
//!   `schemas --check` is the compatibility gate: it fails when `schemas/` differs from the
//!   Rust types, saying whether each change is compatible (regenerate) or breaking within a
//!   version (make a new version). `--base <git-rev>` also compares the generated schemas with
//!   `schemas/` as of that revision, so a breaking change that was regenerated and committed is
//!   caught too (CI: `--base origin/main` or the merge base).

use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

mod setup;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("schemas") => schemas(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <test [nextest args…] | schemas [--check [--base <git-rev>]]>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn test(extra: &[String]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    setup::nextest(&cargo)?;
    let nats = setup::nats_server().context("the tests start their own nats-server")?;
    let version = orderflow_natsd::version_of(&nats)?;
    eprintln!("xtask: using {} ({version})", nats.display());
    let database_url = setup::postgres().context("the tests need PostgreSQL")?;
    // What follows the credentials: host, port and database, never a password.
    let at = database_url.rsplit_once('@').map_or(database_url.as_str(), |(_, rest)| rest);
    eprintln!("xtask: using PostgreSQL at {at}");
    let (chromium, chromedriver) =
        setup::chromium().context("the dashboard's browser test needs chromium")?;
    eprintln!("xtask: using {} and {}", chromium.display(), chromedriver.display());
    let (chromium, chromedriver) =
        (chromium.to_string_lossy().into_owned(), chromedriver.to_string_lossy().into_owned());
    let profile = if std::env::var_os("CI").is_some() { "ci" } else { "default" };
    let bin = nats.to_string_lossy().into_owned();
    let env = [
        ("NATS_SERVER_BIN", bin.as_str()),
        ("TEST_DATABASE_URL", database_url.as_str()),
        ("CHROMIUM_BIN", chromium.as_str()),
        ("CHROMEDRIVER_BIN", chromedriver.as_str()),
    ];
    // Doc tests first: nextest does not run them, and its summary should be the last word.
    cargo_env(&["test", "--workspace", "--doc", "--quiet"], &env)?;
    let mut args = vec!["nextest", "run", "--workspace", "--profile", profile];
    args.extend(extra.iter().map(String::as_str));
    cargo_env(&args, &env)
}

/// `schemas [--check [--base REV]]`: runs gen-schemas; for `--base`, first copies `schemas/*.json`
/// as of REV into a temporary directory (`git show REV:schemas/FILE`) for it to compare against.
fn schemas(args: &[String]) -> anyhow::Result<()> {
    let mut check = false;
    let mut base = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--base" => base = Some(rest.next().context("--base needs a git revision")?.clone()),
            other => {
                bail!("unknown argument {other}: usage: cargo xtask schemas [--check [--base <git-rev>]]")
            }
        }
    }
    let mut gen_args = vec!["run", "--quiet", "-p", "orderflow-events", "--bin", "gen-schemas", "--"];
    if !check {
        if base.is_some() {
            bail!("--base only goes with --check");
        }
        return cargo(&gen_args);
    }
    gen_args.push("--check");
    let base_dir = match &base {
        Some(rev) => Some(schemas_at(rev)?),
        None => None,
    };
    let base_path = base_dir.as_ref().map(|d| d.path().to_string_lossy().into_owned());
    if let Some(path) = &base_path {
        gen_args.extend(["--base-dir", path.as_str()]);
    }
    cargo(&gen_args)
}

/// `schemas/*.json` as of git revision `rev`, in a temporary directory.
fn schemas_at(rev: &str) -> anyhow::Result<tempfile::TempDir> {
    let root = git(&["rev-parse", "--show-toplevel"])?;
    let root = root.trim();
    let listing = git(&["-C", root, "ls-tree", "--name-only", &format!("{rev}:schemas")])
        .with_context(|| format!("listing schemas/ at {rev}"))?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    for name in listing.lines().filter(|name| name.ends_with(".json")) {
        let text = git(&["-C", root, "show", &format!("{rev}:schemas/{name}")])?;
        std::fs::write(dir.path().join(name), text).with_context(|| format!("writing {name}"))?;
    }
    eprintln!("xtask: comparing with schemas/ at {rev}");
    Ok(dir)
}

fn git(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("git").args(args).output().context("running git")?;
    if !output.status.success() {
        bail!("`git {}` failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    String::from_utf8(output.stdout).context("git printed something that is not UTF-8")
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    cargo_env(args, &[])
}

fn cargo_env(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(&cargo)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("running {cargo} {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
