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
