//! Secrets given to the real `payment-service` binary — by environment and by flag — reach none
//! of its log lines (at DEBUG, start-up to drain) and none of its `--help`, while the settings
//! they belong to are logged, redacted.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use orderflow_test_support::{DbBackend, TestDb, TestNats};

const NATS_PASSWORD: &str = "N4tsEnvS3cret";
const ADMIN_TOKEN: &str = "AdminEnvS3cret-0123456789";
const GATEWAY_PASSWORD: &str = "GwFl4gS3cret";
const DB_PASSWORD: &str = "DbEnvS3cret";
const SECRETS: [&str; 4] = [NATS_PASSWORD, ADMIN_TOKEN, GATEWAY_PASSWORD, DB_PASSWORD];

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
    }
}

#[test]
fn secrets_given_by_environment_or_flag_appear_in_no_log_line_and_no_help() {
    // Arrange: a NATS password and the admin token by environment, gateway credentials by flag.
    let nats = TestNats::start().unwrap();
    let db = TestDb::new(DbBackend::Sqlite).unwrap();
    let (database_url, _) = db.for_service("payment");
    let gateway_url = format!("http://gateway:{GATEWAY_PASSWORD}@127.0.0.1:9");
    let mut child = Command::new(env!("CARGO_BIN_EXE_payment-service"))
        .args(["--port", "0", "--database-url", &database_url, "--gateway-url", &gateway_url])
        .env("NATS_URL", format!("nats://orderflow:{NATS_PASSWORD}@127.0.0.1:{}", nats.port()))
        .env("ORDERFLOW_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, seen) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log.iter().any(|l: &String| l.contains("\"running\"")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match seen.recv_timeout(left) {
            Ok(line) => log.push(line),
            Err(_) => panic!("payment-service did not start within 60 s:\n{}", log.join("\n")),
        }
    }

    // Act: a graceful stop, so the drain logs too.
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    reader.join().unwrap();
    log.extend(seen.try_iter());
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let help = Command::new(env!("CARGO_BIN_EXE_payment-service"))
        .arg("--help")
        .env("NATS_URL", format!("nats://orderflow:{NATS_PASSWORD}@127.0.0.1:4222"))
        .env("DATABASE_URL", format!("postgres://orderflow:{DB_PASSWORD}@127.0.0.1/orderflow"))
        .env("ORDERFLOW_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();

    // Assert
    let log = log.join("\n");
    assert!(status.success(), "{status}:\n{log}\n{stderr}");
    assert!(log.contains("nats://orderflow:***@127.0.0.1"), "the settings are logged, redacted:\n{log}");
    assert!(log.contains("http://gateway:***@127.0.0.1:9"), "{log}");
    assert_no_secret("the log", &log);
    assert_no_secret("stderr", &stderr);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--database-url"), "{help}");
    assert_no_secret("--help", &help);
}
