//! Writes (or, with `--check`, verifies) the committed JSON Schemas.
//!
//! `cargo run -p orderflow-events --bin gen-schemas [-- --check] [DIR]`;
//! DIR defaults to the workspace's `schemas/`.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: gen-schemas [--check] [DIR]";

fn main() -> ExitCode {
    let mut check = false;
    let mut dir = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
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
    let dir = dir.unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas")));
    let dir = dir.canonicalize().unwrap_or(dir);

    if check {
        return match orderflow_events::check_schemas(&dir) {
            Ok(()) => {
                println!("schemas in {} are up to date", dir.display());
                ExitCode::SUCCESS
            }
            Err(problems) => {
                eprintln!("schemas in {} have drifted from the Rust types:", dir.display());
                for problem in problems {
                    eprintln!("  {problem}");
                }
                eprintln!("run `cargo run -p orderflow-events --bin gen-schemas` and commit the result");
                ExitCode::from(1)
            }
        };
    }

    match orderflow_events::write_schemas(&dir) {
        Ok(paths) => {
            for path in paths {
                println!("wrote {}", path.display());
            }
            // Files of kinds that no longer exist are not deleted automatically.
            if let Err(problems) = orderflow_events::check_schemas(&dir) {
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
