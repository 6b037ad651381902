//! The CLI as a user's shell runs it: output piped into a command that stops reading early.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// `orderflow … | head -1`: when the reader goes away the command still exits cleanly instead
/// of panicking on the closed pipe, as `println!` does.
#[test]
fn output_into_a_pipe_closed_early_ends_cleanly() {
    // Arrange: a command that prints hundreds of lines.
    let mut child = Command::new(env!("CARGO_BIN_EXE_orderflow"))
        .args(["verify", "--dry-run", "--seed", "7", "--faults", "2000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Act: read one line, then close the pipe.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();

    // Assert
    assert!(first.starts_with("seed 7"), "{first:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `orderflow schemas list|diff|show`: the event contract from the command line, no server.
#[test]
fn schemas_list_diff_and_show_describe_every_version() {
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_orderflow")).args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.success(), stdout, String::from_utf8_lossy(&output.stderr).into_owned())
    };

    let (ok, list, stderr) = run(&["schemas", "list"]);
    assert!(ok, "{stderr}");
    assert!(list.lines().any(|l| l.contains("orders.created.v2.express") && l.contains("ORDERS")), "{list}");
    assert!(list.contains("orderflow.inventory.rejected.v2"), "{list}");

    let (ok, diff, stderr) = run(&["schemas", "diff", "orders.created", "v1", "v2"]);
    assert!(ok, "{stderr}");
    assert!(diff.starts_with("orders.created.v1 → orders.created.v2"), "{diff}");
    assert!(diff.contains("added:"), "{diff}");

    let (ok, show, stderr) = run(&["schemas", "show", "inventory.rejected.v2.express"]);
    assert!(ok, "{stderr}");
    assert!(show.contains("\"const\": \"orderflow.inventory.rejected.v2\""), "{show}");

    let (ok, _, stderr) = run(&["schemas", "show", "orders.created.v7"]);
    assert!(!ok);
    assert!(stderr.contains("unknown subject"), "{stderr}");
}

/// `orderflow certs`: writes the CA and certificates once (keys 0600), refuses to overwrite
/// without --force, and a nats-server using them accepts a client that trusts the CA.
#[tokio::test]
async fn certs_writes_a_ca_a_server_accepts_and_refuses_to_overwrite_without_force() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let certs = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_orderflow"))
            .args(["certs", "--out"])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };

    let first = certs(&["--name", "nats.example.internal"]);
    let second = certs(&[]);
    let forced = certs(&["--force"]);

    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stdout).contains("nats.example.internal"));
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("--force"), "{second:?}");
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    for key in ["ca-key.pem", "server-key.pem", "client-key.pem"] {
        let mode = std::fs::metadata(out.join(key)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let tls = orderflow_natsd::ServerTls {
        cert_file: out.join("server.pem"),
        key_file: out.join("server-key.pem"),
        ca_file: Some(out.join("ca.pem")),
        verify: true,
    };
    let nats = orderflow_natsd::NatsServer::start(
        orderflow_natsd::Options::new(dir.path().join("store")).with_tls(tls),
    )
    .unwrap();
    let client_tls = orderflow_messaging::NatsTls {
        ca_file: Some(out.join("ca.pem")),
        cert_file: Some(out.join("client.pem")),
        key_file: Some(out.join("client-key.pem")),
        required: true,
    };
    let client = orderflow_messaging::connect(
        &orderflow_messaging::ConnectConfig::new(nats.url(), "orderflow/test").with_tls(client_tls),
    )
    .await
    .unwrap();
    client.flush().await.unwrap();
}
