//! `cargo xtask <task>`: the project's automation, in Rust instead of shell glue.
//!
//! - `test`: makes sure the real infrastructure the tests need is there, installing or starting
//!   what is missing (cargo-nextest, a nats-server >= 2.12, PostgreSQL, chromium: see [`setup`]), then runs
//!   the doc tests and every other test (`cargo nextest run --workspace`).
//! - `schemas`: regenerates the committed JSON Schemas in `schemas/`.

use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

mod setup;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("schemas") => cargo(&["run", "--quiet", "-p", "orderflow-events", "--bin", "gen-schemas"]),
        _ => {
            eprintln!("usage: cargo xtask <test [nextest args…] | schemas>");
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
