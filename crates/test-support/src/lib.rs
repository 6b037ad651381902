//! Real infrastructure for tests: every test that needs a broker gets its own `nats-server`.
//!
//! [`TestNats`] starts a nats-server (>= 2.12, from `NATS_SERVER_BIN` or `PATH`) with JetStream on
//! a free loopback port and a temporary store directory, stops it on drop, and can kill and
//! restart it on the same port and store to test recovery. Nothing here mocks a broker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use anyhow::Context as _;
use orderflow_natsd::{NatsServer, Options};
use tempfile::TempDir;

/// A private nats-server with JetStream for one test.
#[derive(Debug)]
pub struct TestNats {
    server: NatsServer,
    // Dropped after `server` (field order), so the store outlives the process.
    _dir: TempDir,
}

impl TestNats {
    /// Starts a server on a free port with a fresh store. Fails with an install hint when no
    /// nats-server >= 2.12 is available.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("orderflow-nats-").tempdir()?;
        let server = NatsServer::start(Options::new(dir.path().join("store")))
            .context("starting a nats-server for the test")?;
        Ok(Self { server, _dir: dir })
    }

    /// The client URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The client port (stable across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// A plain client connected to this server.
    pub async fn client(&self) -> anyhow::Result<async_nats::Client> {
        async_nats::connect(self.url()).await.context("connecting to the test nats-server")
    }

    /// A JetStream context on a new client.
    pub async fn jetstream(&self) -> anyhow::Result<async_nats::jetstream::Context> {
        Ok(async_nats::jetstream::new(self.client().await?))
    }

    /// Kills the server abruptly (like a crash); the store stays.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Stops the server gracefully.
    pub fn stop(&mut self) {
        self.server.stop(Duration::from_secs(10));
    }

    /// Starts the server again on the same port and store.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.server.restart().context("restarting the test nats-server")
    }
}

/// Polls `check` every 25 ms until it returns `Some`, or fails after `timeout` with `what`.
///
/// Tests wait for conditions, never for fixed sleeps; the timeout only bounds a failing test.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
