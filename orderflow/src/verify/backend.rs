//! The two places a run's faults land: processes the suite starts itself (`--backend
//! processes`, the default) and the containers of a running `deploy/compose.yaml` stack
//! (`--backend containers`). One fault schedule and one invariant checker drive both; each
//! backend turns "kill this instance", "freeze that NATS node" into its own means (a signal to a
//! pid, a `docker` command) and says when something cannot be done with it.

use std::time::Duration;

use anyhow::Context as _;

use super::cluster::Cluster;
use super::containers::Containers;
use super::procs::{Role, ServiceProc};

/// Where the deployment runs.
pub(super) enum Backend {
    /// Child processes on loopback: a 3-node cluster and `orderflow serve <role>` instances.
    Processes(Processes),
    /// The containers of a compose project.
    Containers(Box<Containers>),
}

/// The processes backend's state.
pub(super) struct Processes {
    /// The NATS nodes.
    pub cluster: Cluster,
    /// The service instances, the gateway simulator first.
    pub procs: Vec<ServiceProc>,
}

/// A graceful restart of one instance.
#[derive(Debug)]
pub(super) struct Restarted {
    /// From the stop request until the instance had exited.
    pub drained: Duration,
    /// Whether it exited on its own within the grace period (else it was killed).
    pub clean: bool,
}

/// How long an instance may take to be ready after a start.
pub(super) const READY_TIMEOUT: Duration = Duration::from_secs(60);

impl Backend {
    /// The NATS nodes' names (`nats-1`…), which stream info names its leader by.
    pub(super) fn node_names(&self) -> Vec<String> {
        match self {
            Self::Processes(p) => p.cluster.nodes.iter().map(|n| n.name.clone()).collect(),
            Self::Containers(c) => c.node_names(),
        }
    }

    /// Waits until every node that is up answers JetStream requests.
    pub(super) async fn wait_formed(&self, timeout: Duration) -> anyhow::Result<()> {
        match self {
            Self::Processes(p) => p.cluster.wait_formed(timeout).await,
            Self::Containers(c) => c.wait_formed(timeout).await,
        }
    }

    /// Freezes node `i` (SIGSTOP, `docker pause`).
    pub(super) async fn pause_node(&mut self, i: usize) -> anyhow::Result<()> {
        match self {
            Self::Processes(p) => p.cluster.pause(i),
            Self::Containers(c) => c.pause_node(i).await,
        }
    }

    /// Thaws node `i`.
    pub(super) async fn resume_node(&mut self, i: usize) -> anyhow::Result<()> {
        match self {
            Self::Processes(p) => p.cluster.resume(i),
            Self::Containers(c) => c.resume_node(i).await,
        }
    }

    /// SIGKILLs node `i`.
    pub(super) async fn kill_node(&mut self, i: usize) -> anyhow::Result<()> {
        match self {
            Self::Processes(p) => {
                p.cluster.kill(i);
                Ok(())
            }
            Self::Containers(c) => c.kill_node(i).await,
        }
    }

    /// Starts node `i` again on its store.
    pub(super) async fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        match self {
            Self::Processes(p) => p.cluster.restart(i).await,
            Self::Containers(c) => c.start_node(i).await,
        }
    }

    /// Cuts node `i` off the network.
    pub(super) async fn partition_node(&mut self, i: usize) -> anyhow::Result<()> {
        match self {
            Self::Processes(_) => anyhow::bail!(
                "a network partition needs the containers backend (processes share the loopback)"
            ),
            Self::Containers(c) => c.partition_node(i).await,
        }
    }

    /// Connects node `i` again.
    pub(super) async fn heal_node(&mut self, i: usize) -> anyhow::Result<()> {
        match self {
            Self::Processes(_) => Ok(()),
            Self::Containers(c) => c.heal_node(i).await,
        }
    }

    /// The service instances (and the gateway simulator), by name: what faults target.
    pub(super) fn instance_names(&self) -> Vec<String> {
        match self {
            Self::Processes(p) => p.procs.iter().map(|p| p.name.clone()).collect(),
            Self::Containers(c) => c.instance_names(),
        }
    }

    /// SIGKILLs an instance; returns what was hit (`inventory-2 (pid 123)`).
    pub(super) async fn kill_instance(&mut self, name: &str) -> anyhow::Result<String> {
        match self {
            Self::Processes(p) => {
                let proc = p.find(name)?;
                let target =
                    format!("{name} (pid {})", proc.pid().map_or_else(|| "-".into(), |pid| pid.to_string()));
                proc.kill().await;
                Ok(target)
            }
            Self::Containers(c) => c.kill_instance(name).await,
        }
    }

    /// Starts an instance again and waits until it is ready.
    pub(super) async fn start_instance(&mut self, name: &str, http: &reqwest::Client) -> anyhow::Result<()> {
        match self {
            Self::Processes(p) => p.find(name)?.start(http, READY_TIMEOUT).await,
            Self::Containers(c) => c.start_instance(name, http).await,
        }
    }

    /// Stops an instance gracefully (SIGTERM; killed after `grace`), starts it again and waits
    /// until it is ready.
    pub(super) async fn restart_instance(
        &mut self,
        name: &str,
        grace: Duration,
        http: &reqwest::Client,
    ) -> anyhow::Result<Restarted> {
        match self {
            Self::Processes(p) => {
                let proc = p.find(name)?;
                let started = tokio::time::Instant::now();
                proc.stop(grace).await;
                let drained = started.elapsed();
                proc.start(http, READY_TIMEOUT).await?;
                Ok(Restarted { drained, clean: drained < grace })
            }
            Self::Containers(c) => c.restart_instance(name, grace, http).await,
        }
    }

    /// Waits until an instance that runs is ready.
    pub(super) async fn wait_ready(&mut self, name: &str, http: &reqwest::Client) -> anyhow::Result<()> {
        match self {
            Self::Processes(p) => {
                let url = format!("{}/health/ready", p.find(name)?.url());
                super::containers::poll_ready(&url, name, http).await
            }
            Self::Containers(c) => c.wait_ready(name, http).await,
        }
    }

    /// SIGKILLs PostgreSQL.
    pub(super) async fn kill_database(&mut self) -> anyhow::Result<String> {
        match self {
            Self::Processes(_) => {
                anyhow::bail!("killing the database needs the containers backend (the suite does not run it)")
            }
            Self::Containers(c) => c.kill_database().await,
        }
    }

    /// Starts PostgreSQL again on its volume and waits until it accepts connections.
    pub(super) async fn start_database(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Processes(_) => Ok(()),
            Self::Containers(c) => c.start_database().await,
        }
    }

    /// Base URL of the first instance of `role` (the order API: what clients use).
    pub(super) fn url_of(&self, role: Role) -> anyhow::Result<String> {
        match self {
            Self::Processes(p) => p
                .procs
                .iter()
                .find(|p| p.role == role)
                .map(ServiceProc::url)
                .context("no such service instance"),
            Self::Containers(c) => c.url_of(role),
        }
    }

    /// Instances that died without being asked to (and are forgotten as running).
    pub(super) async fn note_crashes(&mut self) -> Vec<String> {
        match self {
            Self::Processes(p) => p
                .procs
                .iter_mut()
                .filter_map(|proc| {
                    proc.crashed().map(|status| {
                        format!("{} exited on its own with {status}; see {}", proc.name, proc.log().display())
                    })
                })
                .collect(),
            Self::Containers(c) => c.note_crashes().await,
        }
    }

    /// Every process of the run and its pid (for memory samples).
    pub(super) fn pids(&self) -> Vec<(String, Option<u32>)> {
        match self {
            Self::Processes(p) => p
                .procs
                .iter()
                .map(|proc| (proc.name.clone(), proc.pid()))
                .chain(p.cluster.nodes.iter().map(|n| (n.name.clone(), n.pid())))
                .collect(),
            Self::Containers(c) => c.pids(),
        }
    }

    /// Brings back whatever is down, frozen or cut off; returns what could not be.
    pub(super) async fn ensure_running(&mut self, http: &reqwest::Client) -> Vec<String> {
        let mut errors = Vec::new();
        match self {
            Self::Processes(p) => {
                for i in 0..p.cluster.nodes.len() {
                    if p.cluster.nodes[i].paused
                        && let Err(e) = p.cluster.resume(i)
                    {
                        errors.push(format!("{e:#}"));
                    }
                    if p.cluster.nodes[i].down
                        && let Err(e) = p.cluster.restart(i).await
                    {
                        errors.push(format!("{e:#}"));
                    }
                }
                for proc in &mut p.procs {
                    if !proc.is_running()
                        && let Err(e) = proc.start(http, READY_TIMEOUT).await
                    {
                        errors.push(format!("{e:#}"));
                    }
                }
            }
            Self::Containers(c) => errors.extend(c.ensure_running(http).await),
        }
        errors
    }

    /// Stops what the run started (processes); leaves a compose stack running, healed.
    pub(super) async fn stop(&mut self, http: &reqwest::Client) {
        match self {
            Self::Processes(p) => {
                for proc in p.procs.iter_mut().rev() {
                    proc.stop(Duration::from_secs(15)).await;
                }
                p.cluster.stop().await;
            }
            Self::Containers(c) => {
                for e in c.ensure_running(http).await {
                    tracing::warn!(error = %e, "could not bring a container back");
                }
            }
        }
    }

    /// The instances and how often each was started, for the report.
    pub(super) fn instance_summary(&self) -> Vec<String> {
        match self {
            Self::Processes(p) => {
                p.procs.iter().map(|p| format!("{} (started {}×)", p.name, p.starts)).collect()
            }
            Self::Containers(c) => c.instance_summary(),
        }
    }

    /// What NATS is, for the report.
    pub(super) fn nats_label(&self, url: &str) -> String {
        match self {
            Self::Processes(_) => {
                format!("3-node cluster on 127.0.0.1 ({url}), streams at 3 replicas, sync_interval always")
            }
            Self::Containers(c) => c.nats_label(),
        }
    }
}

impl Processes {
    fn find(&mut self, name: &str) -> anyhow::Result<&mut ServiceProc> {
        self.procs.iter_mut().find(|p| p.name == name).with_context(|| format!("no instance {name}"))
    }
}
