//! `orderflow-healthcheck URL [TIMEOUT_MS]`: the probe of the service binaries' `healthcheck`
//! subcommand on its own, for images that ship no orderflow service (the NATS image probes
//! `http://127.0.0.1:8222/healthz` with it). Exit 0 on a 2xx answer, 1 otherwise.

use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: orderflow-healthcheck URL [TIMEOUT_MS]");
        return ExitCode::from(2);
    };
    let timeout_ms = match args.next().map(|ms| ms.parse::<u64>()) {
        None => 3000,
        Some(Ok(ms)) => ms.max(1),
        Some(Err(e)) => {
            eprintln!("orderflow-healthcheck: TIMEOUT_MS: {e}");
            return ExitCode::from(2);
        }
    };
    match orderflow_platform::healthcheck::probe(&url, Duration::from_millis(timeout_ms)) {
        Ok(status) => {
            println!("{url}: {status}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("orderflow-healthcheck: {e}");
            ExitCode::FAILURE
        }
    }
}
