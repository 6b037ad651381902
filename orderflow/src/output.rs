//! What the CLI prints on stdout, in one place: a closed pipe (`orderflow dlq list | head`) ends
//! the output quietly instead of panicking, as `println!` would.

use std::io::Write;

use anyhow::Context as _;

/// Writes `text` to stdout and flushes; a closed pipe is not an error.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    }
}

/// [`emit`] with a newline.
pub(crate) fn line(text: impl std::fmt::Display) -> anyhow::Result<()> {
    emit(&format!("{text}\n"))
}
