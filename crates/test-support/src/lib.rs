//! Real infrastructure for tests: every test that needs a broker gets its own `nats-server`.
//!
//! [`TestNats`] starts a nats-server (>= 2.12, from `NATS_SERVER_BIN` or `PATH`) with JetStream on
//! a free loopback port and a temporary store directory, stops it on drop, and can kill and
//! restart it on the same port and store to test recovery. Nothing here mocks a broker.
//! [`service::TestService`] runs one orderflow service in process on a [`TestNats`] and a
//! [`TestDb`] of its own, with the helpers every service's tests share. [`tls_proxy::TlsProxy`]
//! puts a real plain server behind TLS; [`tcp_proxy::TcpProxy`] puts a real server behind a port
//! that refuses connections until the test opens it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod service;
pub mod tcp_proxy;
pub mod tls_proxy;

use std::time::Duration;

use anyhow::Context as _;
use orderflow_devcerts::{CertPaths, DevCerts};
use orderflow_natsd::{NatsServer, Options, ServerTls};
use tempfile::TempDir;

/// A private nats-server with JetStream for one test.
#[derive(Debug)]
pub struct TestNats {
    server: NatsServer,
    /// The credentials directory of a [`start_secured`](Self::start_secured) server.
    creds: Option<std::path::PathBuf>,
    certs: Option<CertPaths>,
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
        Ok(Self { server, creds: None, certs: None, _dir: dir })
    }

    /// [`start`](Self::start) on `port` (a service under test may have been told it before the
    /// server existed: see [`free_port`]).
    pub fn start_on(port: u16) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("orderflow-nats-").tempdir()?;
        let mut options = Options::new(dir.path().join("store"));
        options.port = Some(port);
        let server = NatsServer::start(options).context("starting a nats-server for the test")?;
        Ok(Self { server, creds: None, certs: None, _dir: dir })
    }

    /// Starts a server with auth on, as `orderflow up` runs it: an nkey per identity
    /// ([`orderflow_messaging::identity`]) with the deployment's permissions, so clients must
    /// connect with [`creds`](Self::creds). Nothing is provisioned.
    pub fn start_secured() -> anyhow::Result<Self> {
        use orderflow_messaging::{Topology, identity};
        let dir = tempfile::Builder::new().prefix("orderflow-nats-").tempdir()?;
        let creds = dir.path().join("creds");
        identity::ensure_credentials(&creds, &Topology::deployment(1), &[])?;
        let mut options = Options::new(dir.path().join("store"));
        options.extra_conf = Some(std::fs::read_to_string(identity::auth_conf_file(&creds))?);
        let server = NatsServer::start(options).context("starting a secured nats-server for the test")?;
        Ok(Self { server, creds: Some(creds), certs: None, _dir: dir })
    }

    /// The seed file of `identity` (`order`, …, `admin`) on a secured server.
    pub fn creds(&self, identity: &str) -> std::path::PathBuf {
        let dir = self.creds.as_deref().expect("creds() needs a server from start_secured()");
        orderflow_messaging::identity::seed_file(dir, identity)
    }

    /// Starts a server that requires TLS on client connections, with a certificate for
    /// `localhost` and `127.0.0.1` from a fresh CA ([`certs`](Self::certs)); with `verify`, clients
    /// must also present a certificate signed by that CA.
    pub fn start_with_tls(verify: bool) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("orderflow-nats-").tempdir()?;
        let certs = test_certs(&dir.path().join("certs"))?;
        let tls = ServerTls {
            cert_file: certs.server.clone(),
            key_file: certs.server_key.clone(),
            ca_file: Some(certs.ca.clone()),
            verify,
        };
        let server = NatsServer::start(Options::new(dir.path().join("store")).with_tls(tls))
            .context("starting a TLS nats-server for the test")?;
        Ok(Self { server, creds: None, certs: Some(certs), _dir: dir })
    }

    /// The CA, server and client certificates of a server started with
    /// [`start_with_tls`](Self::start_with_tls).
    pub fn certs(&self) -> Option<&CertPaths> {
        self.certs.as_ref()
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

/// A loopback port nothing listens on (the system's pick of a free one, released again): for a
/// server a test starts later, or an address that refuses connections meanwhile.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A fresh CA with a server certificate for `localhost` and `127.0.0.1` and a client
/// certificate, written into `dir`.
pub fn test_certs(dir: &std::path::Path) -> anyhow::Result<CertPaths> {
    let names = ["localhost", "127.0.0.1"].map(str::to_owned);
    let certs = DevCerts::generate(&names).context("generating test certificates")?;
    certs.write(dir, false).context("writing test certificates")
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

/// Waits until every listed consumer (`(stream, durable)`) has nothing pending and nothing
/// unacknowledged, and `outbox_empty` holds: after that, a service emits nothing more without
/// new input. The positive signal that replaces "sleep, then assert nothing happened".
pub async fn wait_until_quiet<F, Fut>(
    js: &async_nats::jetstream::Context,
    consumers: &[(&str, &str)],
    mut outbox_empty: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let quiet = eventually(Duration::from_secs(60), "the service to be quiet", || {
        let outbox = outbox_empty();
        async move {
            for (stream, durable) in consumers {
                let info = js.get_stream(*stream).await.ok()?.consumer_info(*durable).await.ok()?;
                if info.num_pending > 0 || info.num_ack_pending > 0 {
                    return None;
                }
            }
            outbox.await.then_some(())
        }
    })
    .await;
    if let Err(e) = quiet {
        panic!("{e}");
    }
}

/// Waits until the consumer `durable` of `stream` has settled every message up to the stream
/// sequence `seq`: its ack floor is at or past `seq`, so each of them was acked or termed (after
/// whatever its handler wrote or dead-lettered) and none can be delivered again. Returns the
/// consumer's info from that moment. The positive signal that a message was handled, where a test
/// would otherwise sleep and then assert that nothing (more) happened.
pub async fn wait_until_acked(
    js: &async_nats::jetstream::Context,
    stream: &str,
    durable: &str,
    seq: u64,
) -> async_nats::jetstream::consumer::Info {
    let what = format!("{stream}/{durable} to ack every message up to stream sequence {seq}");
    let settled = eventually(Duration::from_secs(60), &what, || async {
        let info = js.get_stream(stream).await.ok()?.consumer_info(durable).await.ok()?;
        (info.ack_floor.stream_sequence >= seq).then_some(info)
    })
    .await;
    match settled {
        Ok(info) => info,
        Err(e) => panic!("{e}"),
    }
}

/// Every message stored in the stream `name`, oldest first: what a test inspects after the fact.
/// Panics when the stream cannot be read (a test's failure, said plainly).
pub async fn stream_messages(
    js: &async_nats::jetstream::Context,
    name: &str,
) -> Vec<async_nats::jetstream::message::StreamMessage> {
    let mut stream = match js.get_stream(name).await {
        Ok(s) => s,
        Err(e) => panic!("reading the stream {name}: {e}"),
    };
    let state = match stream.info().await {
        Ok(info) => info.state.clone(),
        Err(e) => panic!("reading the state of the stream {name}: {e}"),
    };
    let mut out = Vec::new();
    if state.messages == 0 {
        return out;
    }
    for seq in state.first_sequence..=state.last_sequence {
        // A gap is a deleted message (retention), not an error.
        if let Ok(m) = stream.get_raw_message(seq).await {
            out.push(m);
        }
    }
    out
}

/// Which database a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbBackend {
    /// A SQLite file in a temp directory.
    Sqlite,
    /// A fresh schema in the PostgreSQL at `TEST_DATABASE_URL`
    /// (default `postgres://orderflow:orderflow@127.0.0.1:5432/orderflow_test`, which
    /// `cargo xtask test` creates).
    Postgres,
}

/// A database for one test: a SQLite file in a temp dir, or unique PostgreSQL schemas.
///
/// PostgreSQL must be reachable: a missing server fails the test rather than skipping it.
#[derive(Debug)]
pub struct TestDb {
    backend: DbBackend,
    dir: TempDir,
    suffix: String,
}

/// The PostgreSQL URL the tests use.
pub fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://orderflow:orderflow@127.0.0.1:5432/orderflow_test".to_owned())
}

impl TestDb {
    /// A fresh database of the given kind.
    pub fn new(backend: DbBackend) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("orderflow-db-").tempdir()?;
        let suffix = format!("t{}", std::process::id()) + &unique_suffix();
        Ok(Self { backend, dir, suffix })
    }

    /// The backend.
    pub fn backend(&self) -> DbBackend {
        self.backend
    }

    /// `(database_url, schema)` for `service`: a SQLite file `<service>.db`, or the shared
    /// PostgreSQL database with a schema unique to this test.
    pub fn for_service(&self, service: &str) -> (String, String) {
        let clean: String =
            service.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        match self.backend {
            DbBackend::Sqlite => {
                (format!("sqlite://{}", self.dir.path().join(format!("{service}.db")).display()), clean)
            }
            DbBackend::Postgres => (postgres_url(), format!("{clean}_{}", self.suffix)),
        }
    }

    /// A directory for other files of the test.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("_{}_{nanos}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// For each named `async fn(DbBackend)`, a module of the same name with a `sqlite` and a
/// `postgres` test: every database test is written once and runs on both databases.
///
/// ```ignore
/// orderflow_test_support::both_databases!(an_order_is_confirmed);
/// async fn an_order_is_confirmed(backend: DbBackend) { /* … */ }
/// ```
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::DbBackend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::DbBackend::Postgres).await;
                }
            }
        )+
    };
}
