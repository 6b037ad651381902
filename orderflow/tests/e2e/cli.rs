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
