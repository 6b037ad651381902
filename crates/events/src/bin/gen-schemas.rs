//! Writes (or, with `--check`, verifies) the committed JSON Schemas and `asyncapi.yaml`.
//!
//! `cargo run -p orderflow-events --bin gen-schemas [-- --check [--base-dir BASE]] [DIR]`;
//! DIR defaults to the workspace's `schemas/`. `--check` classifies every difference between
//! the generated schemas and DIR's (and, with `--base-dir`, BASE's: a git revision's copy that
//! `cargo xtask schemas --check --base REV` extracts) as compatible or breaking, and exits 1 on
//! any drift. Exit 2 is a usage or I/O error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use orderflow_events::gate::{Finding, compare_with_dir};

const USAGE: &str = "usage: gen-schemas [--check [--base-dir BASE]] [DIR]";

fn main() -> ExitCode {
    let mut check = false;
    let mut dir = None;
    let mut base = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--base-dir" => match args.next() {
                Some(path) => base = Some(PathBuf::from(path)),
                None => {
                    eprintln!("--base-dir needs a directory\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            flag if flag.starts_with('-') => {
                eprintln!("unknown option {flag}\n{USAGE}");
                return ExitCode::from(2);
            }
            path if dir.is_none() => dir = Some(PathBuf::from(path)),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if base.is_some() && !check {
        eprintln!("--base-dir only goes with --check\n{USAGE}");
        return ExitCode::from(2);
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas")));
    let dir = dir.canonicalize().unwrap_or(dir);

    if check { run_check(&dir, base.as_deref()) } else { write(&dir) }
}

/// The gate: drift against `dir`, breaking changes against `dir` and `base`.
fn run_check(dir: &Path, base: Option<&Path>) -> ExitCode {
    let mut failed = false;

    let drift = compare_with_dir(dir);
    if !drift.is_empty() {
        failed = true;
        let breaking = drift.iter().any(Finding::is_breaking);
        eprintln!("schemas in {} differ from the Rust types:", dir.display());
        print_findings(&drift);
        if breaking {
            eprintln!(
                "a breaking change within a version: make a new version (a new subject and type) instead \
                 of changing this one; see docs/EVENTS.md"
            );
        } else {
            eprintln!("the changes are compatible: run `cargo xtask schemas` and commit schemas/");
        }
    }

    if let Err(problem) = orderflow_events::check_asyncapi(dir) {
        failed = true;
        eprintln!("{problem}");
    }

    if let Some(base) = base {
        let against_base = compare_with_dir(base);
        let breaking: Vec<Finding> = against_base.iter().filter(|f| f.is_breaking()).cloned().collect();
        if breaking.is_empty() {
            println!(
                "no breaking change against the base revision ({} schema(s) changed or new)",
                against_base.len()
            );
        } else {
            failed = true;
            eprintln!("breaking changes against the base revision:");
            print_findings(&breaking);
            eprintln!(
                "a committed schema may only change compatibly within a version: make a new version; \
                 see docs/EVENTS.md"
            );
        }
    }

    if failed {
        ExitCode::from(1)
    } else {
        println!("schemas and asyncapi.yaml in {} are up to date", dir.display());
        ExitCode::SUCCESS
    }
}

fn print_findings(findings: &[Finding]) {
    for finding in findings {
        for line in finding.lines() {
            eprintln!("  {line}");
        }
    }
}

fn write(dir: &Path) -> ExitCode {
    let written = orderflow_events::write_schemas(dir).and_then(|mut paths| {
        paths.push(orderflow_events::write_asyncapi(dir)?);
        Ok(paths)
    });
    match written {
        Ok(paths) => {
            for path in paths {
                println!("wrote {}", path.display());
            }
            // Files of message types that no longer exist are not deleted automatically.
            if let Err(problems) = orderflow_events::check_schemas(dir) {
                for problem in problems {
                    eprintln!("warning: {problem}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot write schemas to {}: {e}", dir.display());
            ExitCode::from(2)
        }
    }
}
