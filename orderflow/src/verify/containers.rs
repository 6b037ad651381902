//! The containers backend: the suite attaches to a running `deploy/compose.yaml` project and
//! injects its faults with the `docker` command — `docker kill` / `start` of a service instance,
//! of a NATS node or of PostgreSQL (same volume), `docker pause` of a node, `docker network
//! disconnect` of a node (a real partition: the node runs on, cut off from its peers and every
//! client) and `docker stop` / `start` of every instance in turn for a rolling restart.
//!
//! It finds the containers by their compose labels (`com.docker.compose.project`, `.service`,
//! `.container-number`). It reaches the order API through whatever publishes container port
//! 8080 (the stack's load balancer), NATS through the client ports published for all three
//! nodes (TLS: the certificates name 127.0.0.1), PostgreSQL through the URL it is given, and
//! every other service at its container address on the project network (Linux routes the
//! host to a bridge network's addresses).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use orderflow_messaging::NatsTls;
use serde::Deserialize;
use tokio::process::Command;
use tokio::time::Instant;

use super::backend::{READY_TIMEOUT, Restarted};
use super::procs::Role;

/// What the containers backend needs to attach to a stack.
#[derive(Clone, Debug)]
pub struct ContainersConfig {
    /// The compose project (`COMPOSE_PROJECT_NAME`).
    pub project: String,
    /// The admin identity's NATS seed (`deploy/nats/creds/admin.nk`).
    pub nats_creds: PathBuf,
    /// The CA of the NATS servers' certificates (`deploy/nats/certs/ca.pem`).
    pub nats_ca: Option<PathBuf>,
    /// The stack's `ORDERFLOW_ADMIN_TOKEN`.
    pub admin_token: String,
}

/// The service instances deploy/compose.yaml runs, by the names faults give them (what
/// `--dry-run` plans with; a run takes them from the stack).
pub(super) const COMPOSE_INSTANCES: [&str; 8] = [
    "analytics-1",
    "gateway-1",
    "inventory-1",
    "inventory-2",
    "order-1",
    "order-2",
    "payment-1",
    "payment-2",
];

/// A container of the stack the suite acts on.
#[derive(Debug)]
struct Member {
    /// `order-1`, `nats-2`, `postgres`.
    name: String,
    /// Its container id.
    id: String,
    /// Its container name (`orderflow_order-service_1`).
    container: String,
    /// For a service instance: what it runs and its HTTP port.
    role: Option<(Role, u16)>,
    /// Its DNS aliases on the project network (restored when it is connected again).
    aliases: Vec<String>,
    /// Its address on the project network.
    ip: String,
    /// Its host pid while it runs.
    pid: Option<u32>,
    /// Docker's restart count when last looked at (a rise is a crash docker recovered).
    restarts: u64,
    /// Stopped or killed by the suite, not started again yet.
    down: bool,
    /// Paused by the suite.
    paused: bool,
    /// Disconnected from the network by the suite.
    cut_off: bool,
    /// How many times the suite started it.
    starts: u32,
    /// For a NATS node: its client port on the host.
    client_port: Option<u16>,
}

/// The attached stack.
#[derive(Debug)]
pub(super) struct Containers {
    project: String,
    network: String,
    nodes: Vec<Member>,
    instances: Vec<Member>,
    database: Member,
    database_url: String,
    order_url: String,
    admin_seed: PathBuf,
    tls: NatsTls,
}

/// The compose services the suite knows, and what runs in them.
fn service_role(service: &str) -> Option<(Role, u16)> {
    Some(match service {
        "order-service" => (Role::Order, 8080),
        "inventory-service" => (Role::Inventory, 8081),
        "payment-service" => (Role::Payment, 8082),
        "analytics-service" => (Role::Analytics, 8083),
        "gateway-sim" => (Role::Gateway, 8090),
        _ => return None,
    })
}

/// `nats-1`, `nats-2`, `nats-3` (not `nats-provision`).
fn is_node(service: &str) -> bool {
    service.strip_prefix("nats-").is_some_and(|n| n.parse::<u8>().is_ok())
}

impl Containers {
    /// Finds the project's containers; fails unless it has three NATS nodes with published
    /// client ports, PostgreSQL, an order API on a published port and the services.
    pub(super) async fn attach(config: &ContainersConfig, database_url: &str) -> anyhow::Result<Self> {
        let all = inspect_project(&config.project).await?;
        anyhow::ensure!(
            !all.is_empty(),
            "no containers of compose project {:?} (docker ps -a --filter label=com.docker.compose.project={0}); \
             is the stack up (deploy/docker/compose-smoke.sh, or docker-compose -f deploy/compose.yaml up -d)?",
            config.project
        );
        let mut nodes = Vec::new();
        let mut instances = Vec::new();
        let mut database = None;
        let mut order_url = None;
        let mut network = None;
        for c in &all {
            let service = c.label("com.docker.compose.service").unwrap_or_default().to_owned();
            let number = c.label("com.docker.compose.container-number").unwrap_or("1").to_owned();
            if let Some(port) = c.published("8080/tcp") {
                order_url.get_or_insert(format!("http://127.0.0.1:{port}"));
            }
            let member = |name: String, role| -> anyhow::Result<Member> {
                let settings = c
                    .network_settings
                    .networks
                    .values()
                    .next()
                    .with_context(|| format!("{} is on no network", c.container_name()))?;
                Ok(Member {
                    name,
                    id: c.id.clone(),
                    container: c.container_name().to_owned(),
                    role,
                    aliases: settings.aliases.clone().unwrap_or_default(),
                    ip: settings.ip_address.clone(),
                    pid: c.pid(),
                    restarts: c.restart_count,
                    down: false,
                    paused: false,
                    cut_off: false,
                    starts: 0,
                    client_port: c.published("4222/tcp"),
                })
            };
            if !c.state.running {
                // nats-provision (done), or something that is not up: the suite does not start
                // what it did not stop.
                if service_role(&service).is_some() || is_node(&service) || service == "postgres" {
                    anyhow::bail!(
                        "{} is not running ({}); bring the stack up first",
                        c.container_name(),
                        c.state.status
                    );
                }
                continue;
            }
            if let Some((net, _)) = c.network_settings.networks.iter().next() {
                network.get_or_insert(net.clone());
            }
            if is_node(&service) {
                nodes.push(member(service.clone(), None)?);
            } else if service == "postgres" {
                database = Some(member("postgres".into(), None)?);
            } else if let Some((role, port)) = service_role(&service) {
                instances.push(member(format!("{}-{number}", role.as_str()), Some((role, port)))?);
            }
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        instances.sort_by(|a, b| a.name.cmp(&b.name));
        anyhow::ensure!(
            nodes.len() == 3,
            "expected 3 NATS nodes in project {}, found {}",
            config.project,
            nodes.len()
        );
        for n in &nodes {
            anyhow::ensure!(
                n.client_port.is_some(),
                "{} publishes no client port: the suite reaches every node from the host \
                 (deploy/compose.yaml publishes NATS_HOST_PORT, NATS_2_HOST_PORT, NATS_3_HOST_PORT)",
                n.container
            );
        }
        let database =
            database.with_context(|| format!("no postgres container in project {}", config.project))?;
        for role in [Role::Order, Role::Inventory, Role::Payment, Role::Gateway] {
            anyhow::ensure!(
                instances.iter().any(|m| m.role.map(|r| r.0) == Some(role)),
                "no {} container in project {}",
                role.as_str(),
                config.project
            );
        }
        let order_url = match order_url {
            Some(url) => url,
            None => {
                let first = instances.iter().find(|m| m.role.map(|r| r.0) == Some(Role::Order));
                first.map(|m| format!("http://{}:8080", m.ip)).context("no order-service container")?
            }
        };
        Ok(Self {
            project: config.project.clone(),
            network: network.context("the stack's containers are on no network")?,
            nodes,
            instances,
            database,
            database_url: database_url.to_owned(),
            order_url,
            admin_seed: config.nats_creds.clone(),
            tls: NatsTls { ca_file: config.nats_ca.clone(), required: true, ..Default::default() },
        })
    }

    /// The NATS URLs of the three nodes, as the host reaches them.
    pub(super) fn nats_url(&self) -> String {
        self.nodes.iter().map(node_url).collect::<Vec<_>>().join(",")
    }

    /// TLS to NATS.
    pub(super) fn tls(&self) -> &NatsTls {
        &self.tls
    }

    pub(super) fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    pub(super) fn instance_names(&self) -> Vec<String> {
        self.instances.iter().map(|m| m.name.clone()).collect()
    }

    pub(super) fn url_of(&self, role: Role) -> anyhow::Result<String> {
        if role == Role::Order {
            return Ok(self.order_url.clone());
        }
        let m = self
            .instances
            .iter()
            .find(|m| m.role.map(|r| r.0) == Some(role) && !m.down)
            .or_else(|| self.instances.iter().find(|m| m.role.map(|r| r.0) == Some(role)))
            .with_context(|| format!("no {} container", role.as_str()))?;
        Ok(instance_url(m))
    }

    /// Waits until every node that is up, thawed and connected answers JetStream requests on a
    /// connection of its own.
    pub(super) async fn wait_formed(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        for node in self.nodes.iter().filter(|n| !n.down && !n.paused && !n.cut_off) {
            let url = node_url(node);
            loop {
                let last = match super::cluster::node_answers(&url, &self.admin_seed, &self.tls).await {
                    Ok(()) => break,
                    Err(e) => format!("{e:#}"),
                };
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{} did not serve JetStream within {timeout:?}: {last}",
                    node.container
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok(())
    }

    pub(super) async fn pause_node(&mut self, i: usize) -> anyhow::Result<()> {
        let node = self.nodes.get_mut(i).context("no such node")?;
        docker(&["pause", &node.id]).await?;
        node.paused = true;
        Ok(())
    }

    pub(super) async fn resume_node(&mut self, i: usize) -> anyhow::Result<()> {
        let node = self.nodes.get_mut(i).context("no such node")?;
        docker(&["unpause", &node.id]).await?;
        node.paused = false;
        Ok(())
    }

    pub(super) async fn kill_node(&mut self, i: usize) -> anyhow::Result<()> {
        let node = self.nodes.get_mut(i).context("no such node")?;
        docker(&["kill", &node.id]).await?;
        node.down = true;
        Ok(())
    }

    pub(super) async fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        let node = self.nodes.get_mut(i).context("no such node")?;
        docker(&["start", &node.id]).await?;
        node.down = false;
        node.starts += 1;
        self.refresh().await
    }

    pub(super) async fn partition_node(&mut self, i: usize) -> anyhow::Result<()> {
        let network = self.network.clone();
        let node = self.nodes.get_mut(i).context("no such node")?;
        docker(&["network", "disconnect", &network, &node.id]).await?;
        node.cut_off = true;
        Ok(())
    }

    pub(super) async fn heal_node(&mut self, i: usize) -> anyhow::Result<()> {
        let network = self.network.clone();
        let node = self.nodes.get_mut(i).context("no such node")?;
        // Its DNS names back with it: the other nodes' routes and the services find it by them.
        let mut args = vec!["network".to_owned(), "connect".to_owned()];
        for alias in &node.aliases {
            args.extend(["--alias".to_owned(), alias.clone()]);
        }
        args.extend([network, node.id.clone()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args).await?;
        node.cut_off = false;
        self.refresh().await
    }

    pub(super) async fn kill_instance(&mut self, name: &str) -> anyhow::Result<String> {
        let m = find(&mut self.instances, name)?;
        docker(&["kill", &m.id]).await?;
        m.down = true;
        Ok(format!("{name} ({})", m.container))
    }

    pub(super) async fn start_instance(&mut self, name: &str, http: &reqwest::Client) -> anyhow::Result<()> {
        let m = find(&mut self.instances, name)?;
        docker(&["start", &m.id]).await?;
        m.down = false;
        m.starts += 1;
        self.refresh().await?;
        let m = find(&mut self.instances, name)?;
        wait_ready(m, http).await
    }

    /// Waits until an instance that runs is ready.
    pub(super) async fn wait_ready(&mut self, name: &str, http: &reqwest::Client) -> anyhow::Result<()> {
        let m = find(&mut self.instances, name)?;
        wait_ready(m, http).await
    }

    /// Kills an instance and starts it again while PostgreSQL is down; waits until it answers
    /// `/health/live` and says what `/health/ready` answered then (it must not be ready).
    pub(super) async fn start_without_database(
        &mut self,
        name: &str,
        http: &reqwest::Client,
    ) -> anyhow::Result<String> {
        let m = find(&mut self.instances, name)?;
        docker(&["kill", &m.id]).await?;
        m.down = true;
        docker(&["start", &m.id]).await?;
        m.down = false;
        m.starts += 1;
        self.refresh().await?;
        let m = find(&mut self.instances, name)?;
        let base = instance_url(m);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(res) =
                http.get(format!("{base}/health/live")).timeout(Duration::from_secs(2)).send().await
                && res.status().is_success()
            {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{name} ({}) did not answer /health/live within 20 s while PostgreSQL was down",
                m.container
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let res = http
            .get(format!("{base}/health/ready"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .with_context(|| format!("GET {base}/health/ready"))?;
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        anyhow::ensure!(
            !status.is_success(),
            "{name} answered /health/ready {status} with PostgreSQL down: {body}"
        );
        let detail: String = body.chars().take(160).collect();
        Ok(format!("live 200, ready {} ({detail})", status.as_u16()))
    }

    pub(super) async fn restart_instance(
        &mut self,
        name: &str,
        grace: Duration,
        http: &reqwest::Client,
    ) -> anyhow::Result<Restarted> {
        let m = find(&mut self.instances, name)?;
        let started = Instant::now();
        m.down = true;
        docker(&["stop", "-t", &grace.as_secs().max(1).to_string(), &m.id]).await?;
        let drained = started.elapsed();
        let exit = inspect(&[m.id.as_str()]).await?.first().map(|c| c.state.exit_code).unwrap_or(-1);
        // 137: docker's SIGKILL after the grace period. A drained service exits 0.
        let clean = exit == 0;
        if !clean {
            tracing::warn!(instance = name, exit, ?drained, "did not exit cleanly after SIGTERM");
        }
        self.start_instance(name, http).await?;
        Ok(Restarted { drained, clean })
    }

    pub(super) async fn kill_database(&mut self) -> anyhow::Result<String> {
        docker(&["kill", &self.database.id]).await?;
        self.database.down = true;
        Ok(format!("postgres ({})", self.database.container))
    }

    pub(super) async fn start_database(&mut self) -> anyhow::Result<()> {
        docker(&["start", &self.database.id]).await?;
        self.database.down = false;
        self.database.starts += 1;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let opened = orderflow_platform::Db::open(&self.database_url, "public").await;
            match opened {
                Ok(db) => {
                    db.close().await;
                    break;
                }
                Err(e) if Instant::now() >= deadline => {
                    anyhow::bail!("PostgreSQL did not accept connections within {READY_TIMEOUT:?}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        self.refresh().await
    }

    /// Reads every member's state again: addresses, pids, restart counts.
    async fn refresh(&mut self) -> anyhow::Result<()> {
        let seen = self.inspect_members().await?;
        for m in self.members_mut() {
            if let Some(c) = seen.get(&m.id) {
                m.pid = c.pid();
                if let Some(settings) = c.network_settings.networks.values().next()
                    && !settings.ip_address.is_empty()
                {
                    m.ip.clone_from(&settings.ip_address);
                }
            }
        }
        Ok(())
    }

    /// `docker inspect` of every member, by container id.
    async fn inspect_members(&self) -> anyhow::Result<BTreeMap<String, Inspected>> {
        let ids: Vec<&str> = self.members().map(|m| m.id.as_str()).collect();
        Ok(inspect(&ids).await?.into_iter().map(|c| (c.id.clone(), c)).collect())
    }

    /// Containers that exited, or that docker restarted, without the suite asking.
    pub(super) async fn note_crashes(&mut self) -> Vec<String> {
        let seen = match self.inspect_members().await {
            Ok(seen) => seen,
            Err(e) => return vec![format!("could not inspect the containers: {e:#}")],
        };
        let mut crashes = Vec::new();
        for m in self.members_mut() {
            let Some(c) = seen.get(&m.id) else {
                crashes.push(format!("{} ({}) is gone", m.name, m.container));
                continue;
            };
            m.pid = c.pid();
            if c.restart_count > m.restarts {
                crashes.push(format!(
                    "{} ({}) exited on its own and was restarted by docker ({}× in all); see docker logs {}",
                    m.name, m.container, c.restart_count, m.container
                ));
                m.restarts = c.restart_count;
            }
            if !m.down && !c.state.running {
                crashes.push(format!(
                    "{} ({}) is {} (exit code {}) without being stopped; see docker logs {}",
                    m.name, m.container, c.state.status, c.state.exit_code, m.container
                ));
                m.down = true;
            }
        }
        crashes
    }

    pub(super) fn pids(&self) -> Vec<(String, Option<u32>)> {
        self.instances.iter().chain(&self.nodes).map(|m| (m.name.clone(), m.pid)).collect()
    }

    /// Thaws, reconnects and starts whatever the suite left down; returns what failed.
    pub(super) async fn ensure_running(&mut self, http: &reqwest::Client) -> Vec<String> {
        let mut errors = Vec::new();
        for i in 0..self.nodes.len() {
            let node = &self.nodes[i];
            let (paused, cut_off, down) = (node.paused, node.cut_off, node.down);
            let result = async {
                if paused {
                    self.resume_node(i).await?;
                }
                if cut_off {
                    self.heal_node(i).await?;
                }
                if down {
                    self.start_node(i).await?;
                }
                Ok::<_, anyhow::Error>(())
            }
            .await;
            if let Err(e) = result {
                errors.push(format!("{e:#}"));
            }
        }
        if self.database.down
            && let Err(e) = self.start_database().await
        {
            errors.push(format!("{e:#}"));
        }
        let down: Vec<String> = self.instances.iter().filter(|m| m.down).map(|m| m.name.clone()).collect();
        for name in down {
            if let Err(e) = self.start_instance(&name, http).await {
                errors.push(format!("{e:#}"));
            }
        }
        errors
    }

    pub(super) fn instance_summary(&self) -> Vec<String> {
        self.instances
            .iter()
            .map(|m| format!("{} ({}, restarted {}×)", m.name, m.container, m.starts))
            .collect()
    }

    pub(super) fn nats_label(&self) -> String {
        format!(
            "3 NATS containers of compose project {} (clients on {}), TLS, streams at 3 replicas, \
             sync_interval always",
            self.project,
            self.nats_url()
        )
    }

    fn members(&self) -> impl Iterator<Item = &Member> {
        self.nodes.iter().chain(&self.instances).chain(std::iter::once(&self.database))
    }

    fn members_mut(&mut self) -> impl Iterator<Item = &mut Member> {
        self.nodes.iter_mut().chain(&mut self.instances).chain(std::iter::once(&mut self.database))
    }
}

fn find<'a>(members: &'a mut [Member], name: &str) -> anyhow::Result<&'a mut Member> {
    members.iter_mut().find(|m| m.name == name).with_context(|| format!("no container for instance {name}"))
}

fn node_url(node: &Member) -> String {
    format!("nats://127.0.0.1:{}", node.client_port.unwrap_or(4222))
}

fn instance_url(m: &Member) -> String {
    format!("http://{}:{}", m.ip, m.role.map_or(80, |r| r.1))
}

/// Polls `/health/ready` at the instance's address until it answers 200.
async fn wait_ready(m: &Member, http: &reqwest::Client) -> anyhow::Result<()> {
    let url = format!("{}/health/ready", instance_url(m));
    poll_ready(&url, &m.name, http)
        .await
        .with_context(|| format!("container {}; see docker logs {}", m.container, m.container))
}

/// Polls a readiness URL until it answers 200, for [`READY_TIMEOUT`].
pub(super) async fn poll_ready(url: &str, name: &str, http: &reqwest::Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let last = match http.get(url).timeout(Duration::from_secs(2)).send().await {
            Ok(res) if res.status().is_success() => return Ok(()),
            Ok(res) => format!("HTTP {}", res.status()),
            Err(e) => e.to_string(),
        };
        anyhow::ensure!(Instant::now() < deadline, "{name} was not ready within {READY_TIMEOUT:?}: {last}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `docker <args>`; its standard output, or an error with its standard error.
async fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker")
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running docker {}", args.join(" ")))?;
    anyhow::ensure!(
        out.status.success(),
        "docker {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8(out.stdout).context("docker's output is not UTF-8")
}

/// `docker inspect` of these containers.
async fn inspect(ids: &[&str]) -> anyhow::Result<Vec<Inspected>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec!["inspect"];
    args.extend_from_slice(ids);
    parse_inspect(&docker(&args).await?)
}

/// Every container of a compose project, running or not.
async fn inspect_project(project: &str) -> anyhow::Result<Vec<Inspected>> {
    let filter = format!("label=com.docker.compose.project={project}");
    let ids = docker(&["ps", "-a", "-q", "--no-trunc", "--filter", &filter]).await?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    inspect(&ids).await
}

fn parse_inspect(json: &str) -> anyhow::Result<Vec<Inspected>> {
    serde_json::from_str(json).context("reading docker inspect's output")
}

/// The part of `docker inspect` the suite reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspected {
    id: String,
    name: String,
    #[serde(default)]
    restart_count: u64,
    state: ContainerState,
    config: ContainerConfig,
    network_settings: NetworkSettings,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerState {
    status: String,
    running: bool,
    #[serde(default)]
    pid: u32,
    #[serde(default)]
    exit_code: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerConfig {
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkSettings {
    #[serde(default)]
    networks: BTreeMap<String, EndpointSettings>,
    #[serde(default)]
    ports: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
}

#[derive(Debug, Deserialize)]
struct EndpointSettings {
    #[serde(rename = "IPAddress", default)]
    ip_address: String,
    #[serde(rename = "Aliases", default)]
    aliases: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PortBinding {
    host_port: String,
}

impl Inspected {
    fn label(&self, key: &str) -> Option<&str> {
        self.config.labels.as_ref()?.get(key).map(String::as_str)
    }

    fn container_name(&self) -> &str {
        self.name.trim_start_matches('/')
    }

    fn pid(&self) -> Option<u32> {
        (self.state.running && self.state.pid > 0).then_some(self.state.pid)
    }

    /// The host port a container port is published on.
    fn published(&self, port: &str) -> Option<u16> {
        let bindings = self.network_settings.ports.as_ref()?.get(port)?.as_ref()?;
        bindings.iter().find_map(|b| b.host_port.parse().ok())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Trimmed from `docker inspect` of a compose v1 container (Docker 20.10).
    const INSPECT: &str = r#"[{
        "Id": "4f2a",
        "Name": "/orderflow_nats-2_1",
        "RestartCount": 1,
        "State": {"Status": "running", "Running": true, "Paused": false, "Pid": 4242, "ExitCode": 0,
                  "Health": {"Status": "healthy"}},
        "Config": {"Labels": {"com.docker.compose.project": "orderflow",
                              "com.docker.compose.service": "nats-2",
                              "com.docker.compose.container-number": "1"}},
        "NetworkSettings": {
            "Ports": {"4222/tcp": [{"HostIp": "127.0.0.1", "HostPort": "4223"}], "6222/tcp": null},
            "Networks": {"orderflow_default": {"Aliases": ["nats-2", "4f2a"], "IPAddress": "172.18.0.4"}}
        }
    }]"#;

    #[test]
    fn docker_inspect_is_read() {
        let all = parse_inspect(INSPECT).unwrap();
        let c = &all[0];
        assert_eq!(c.container_name(), "orderflow_nats-2_1");
        assert_eq!(c.label("com.docker.compose.service"), Some("nats-2"));
        assert_eq!(c.published("4222/tcp"), Some(4223));
        assert_eq!(c.published("6222/tcp"), None);
        assert_eq!(c.published("8080/tcp"), None);
        assert_eq!(c.pid(), Some(4242));
        assert_eq!(c.restart_count, 1);
        let net = &c.network_settings.networks["orderflow_default"];
        assert_eq!(net.ip_address, "172.18.0.4");
        assert_eq!(net.aliases.as_deref(), Some(&["nats-2".to_owned(), "4f2a".to_owned()][..]));
    }

    #[test]
    fn compose_services_map_to_roles() {
        assert_eq!(service_role("order-service"), Some((Role::Order, 8080)));
        assert_eq!(service_role("gateway-sim"), Some((Role::Gateway, 8090)));
        assert_eq!(service_role("analytics-service"), Some((Role::Analytics, 8083)));
        assert_eq!(service_role("prometheus"), None);
        assert!(is_node("nats-3"));
        assert!(!is_node("nats-provision"));
    }
}
