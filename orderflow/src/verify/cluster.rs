//! The 3-node JetStream cluster of a verify run: three nats-server processes on 127.0.0.1 that
//! run `deploy/nats/cluster.conf` (with its `jetstream.conf`: `sync_interval: always`), the very
//! files `deploy/compose.yaml` and `deploy/nats/local-cluster.sh` use, copied into the run's
//! directory. Only the environment differs: free ports, a store per node. And TLS: the run
//! replaces the files with the TLS blocks (`tls.conf`, `cluster-tls.conf`) by empty ones, so
//! the suite measures the cluster's behaviour under faults, over plain TCP; TLS itself is tested
//! by orderflow-messaging's tests and by `deploy/check.sh`, which starts this cluster with it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use orderflow_messaging::{Topology, identity};
use orderflow_natsd::{NatsServer, Options};
use tokio::time::Instant;

const CLUSTER_CONF: &str = include_str!("../../../deploy/nats/cluster.conf");
const JETSTREAM_CONF: &str = include_str!("../../../deploy/nats/jetstream.conf");
/// What the run writes for `tls.conf` and `cluster-tls.conf`: no TLS.
const NO_TLS: &str = "# orderflow verify: no TLS (see orderflow/src/verify/cluster.rs)\n";

/// How many nodes.
pub const NODES: usize = 3;

/// One node.
#[derive(Debug)]
pub struct Node {
    /// `nats-1`…, its `server_name` (what stream info names as leader).
    pub name: String,
    /// Client port.
    pub port: u16,
    /// `None` only while a restart or stop is in progress.
    server: Option<NatsServer>,
    /// Frozen by SIGSTOP.
    pub paused: bool,
    /// Killed and not restarted yet.
    pub down: bool,
}

impl Node {
    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        if self.down { None } else { self.server.as_ref().and_then(NatsServer::pid) }
    }
}

/// The running cluster. Dropping it kills every node.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes, `nats-1` first.
    pub nodes: Vec<Node>,
    /// The credentials directory: a seed per identity and the `auth.conf` every node includes.
    pub creds: PathBuf,
}

/// A port nothing listens on now (loopback).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl Cluster {
    /// Writes the configuration into `dir`, starts the three nodes and waits until every node
    /// serves JetStream (routes up, a meta leader elected).
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let conf = dir.join("cluster.conf");
        std::fs::write(&conf, CLUSTER_CONF).with_context(|| format!("writing {}", conf.display()))?;
        let js_conf = dir.join("jetstream.conf");
        std::fs::write(&js_conf, JETSTREAM_CONF).with_context(|| format!("writing {}", js_conf.display()))?;
        for name in ["tls.conf", "cluster-tls.conf"] {
            let path = dir.join(name);
            std::fs::write(&path, NO_TLS).with_context(|| format!("writing {}", path.display()))?;
        }
        let bin = tokio::task::spawn_blocking(orderflow_natsd::find_binary).await??;

        let mut ports = Vec::new();
        for _ in 0..NODES {
            ports.push((free_port()?, free_port()?, free_port()?));
        }
        // Auth on, as deployed: clients with the identities' nkeys (`include ./creds/auth.conf`),
        // routes with a password of this run's.
        let abs_dir = std::path::absolute(dir).context("resolving the run directory")?;
        let creds = abs_dir.join("creds");
        identity::ensure_credentials(&creds, &Topology::deployment(NODES), &[])
            .context("making the cluster's NATS credentials")?;
        let route_password: String = std::iter::repeat_with(fastrand::alphanumeric).take(32).collect();
        let routes = ports
            .iter()
            .map(|(_, route, _)| format!("\"nats://route:{route_password}@127.0.0.1:{route}\""))
            .collect::<Vec<_>>();
        let routes = format!("[{}]", routes.join(", "));

        let mut nodes = Vec::new();
        for (i, (client, route, http)) in ports.into_iter().enumerate() {
            let name = format!("nats-{}", i + 1);
            let store: PathBuf = abs_dir.join(&name);
            let mut opts = Options::new(&store);
            opts.port = Some(client);
            opts.log_file = Some(abs_dir.join(format!("{name}.log")));
            opts.config_file = Some(abs_dir.join("cluster.conf"));
            opts.env = vec![
                ("NATS_SERVER_NAME".into(), name.clone()),
                ("NATS_HOST".into(), "127.0.0.1".into()),
                ("NATS_PORT".into(), client.to_string()),
                ("NATS_CLUSTER_PORT".into(), route.to_string()),
                ("NATS_HTTP_PORT".into(), http.to_string()),
                ("NATS_STORE_DIR".into(), store.display().to_string()),
                ("NATS_ROUTES".into(), routes.clone()),
                ("NATS_ROUTE_PASSWORD".into(), route_password.clone()),
            ];
            let bin = bin.clone();
            let server = tokio::task::spawn_blocking(move || NatsServer::start_with(bin, opts))
                .await?
                .with_context(|| format!("starting {name}"))?;
            nodes.push(Node { name, port: client, server: Some(server), paused: false, down: false });
        }
        let cluster = Self { nodes, creds };
        cluster.wait_formed(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    /// The admin identity's seed file.
    pub fn admin_seed(&self) -> PathBuf {
        identity::seed_file(&self.creds, identity::ADMIN)
    }

    /// A client of the cluster as the admin identity.
    pub fn admin_options(&self) -> anyhow::Result<async_nats::ConnectOptions> {
        Ok(orderflow_messaging::connect::tool_options(Some(&self.admin_seed()), &Default::default())?)
    }

    /// Every node's client URL, comma-separated (what the services and tools take).
    pub fn url(&self) -> String {
        self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.port)).collect::<Vec<_>>().join(",")
    }

    /// Waits until every running node answers a JetStream account request on a connection of
    /// its own (which needs routes and a meta leader).
    pub async fn wait_formed(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        for node in self.nodes.iter().filter(|n| !n.down && !n.paused) {
            let url = format!("nats://127.0.0.1:{}", node.port);
            loop {
                let last = match node_answers(&url, &self.admin_seed(), &Default::default()).await {
                    Ok(()) => break,
                    Err(e) => format!("{e:#}"),
                };
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{} did not serve JetStream within {timeout:?}: {last}; see {}",
                    node.name,
                    node.server.as_ref().map(|s| s.log_file().display().to_string()).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// SIGSTOP node `i`.
    pub fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        if let Some(server) = &node.server {
            server.pause().with_context(|| format!("pausing {}", node.name))?;
        }
        node.paused = true;
        Ok(())
    }

    /// SIGCONT node `i`.
    pub fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        if let Some(server) = &node.server {
            server.resume().with_context(|| format!("resuming {}", node.name))?;
        }
        node.paused = false;
        Ok(())
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(server) = &mut node.server {
            server.kill();
        }
        node.down = true;
    }

    /// Starts node `i` again on the same ports and store.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        let name = node.name.clone();
        // NatsServer::restart blocks while it waits for the server's log to say it is ready.
        let server = node.server.take().with_context(|| format!("{name} is being restarted already"))?;
        let (server, result) = tokio::task::spawn_blocking(move || {
            let mut server = server;
            let result = server.restart();
            (server, result)
        })
        .await?;
        node.server = Some(server);
        result.with_context(|| format!("restarting {name}"))?;
        node.down = false;
        node.paused = false;
        Ok(())
    }

    /// Thaws paused nodes, then stops every node (SIGTERM, SIGKILL after 10 s).
    pub async fn stop(&mut self) {
        for node in &mut self.nodes {
            if node.paused
                && let Some(server) = &node.server
            {
                let _ = server.resume();
                node.paused = false;
            }
        }
        for node in &mut self.nodes {
            if let Some(mut server) = node.server.take() {
                let stopped = tokio::task::spawn_blocking(move || server.stop(Duration::from_secs(10)));
                if let Err(error) = stopped.await {
                    tracing::warn!(node = %node.name, %error, "stopping the node failed");
                }
            }
        }
    }
}

/// Whether the node at `url` answers a JetStream account request, as the admin identity.
pub(super) async fn node_answers(
    url: &str,
    admin_seed: &Path,
    tls: &orderflow_messaging::NatsTls,
) -> anyhow::Result<()> {
    let client = orderflow_messaging::connect::tool_options(Some(admin_seed), tls)?
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(Duration::from_secs(2)))
        .connect(url)
        .await?;
    let js = async_nats::jetstream::new(client);
    js.query_account().await?;
    Ok(())
}
