//! Injecting the fault schedule into a running deployment: killing and restarting instances,
//! freezing and killing NATS nodes, gateway faults and duplicate storms, each healed again and
//! followed by a probe order.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backend::Backend;
use super::faults::UPGRADE_STAGES;
use super::procs::Role;
use super::{Deployment, Fault, FaultRecord, NodeChoice, VerifyConfig};
use crate::load::Stats;
use orderflow_events::Version;

impl Deployment {
    /// Injects the schedule, spread evenly over the load's duration, one fault at a time.
    pub(super) async fn run_faults(
        &mut self,
        schedule: &[Fault],
        start: Instant,
        config: &VerifyConfig,
        client: &Arc<Stats>,
        shutdown: &CancellationToken,
    ) -> Vec<FaultRecord> {
        let mut records = Vec::new();
        let n = schedule.len().max(1) as f64;
        for (i, fault) in schedule.iter().enumerate() {
            let due = start + config.duration.mul_f64((i as f64 + 0.5) / n);
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = shutdown.cancelled() => break,
            }
            self.note_crashes().await;
            self.sample_memory(start.elapsed().as_secs_f64());
            let errors_before = client.errors.load(Ordering::Relaxed);
            let mut record = self.inject(i, fault, start, config).await;
            record.client_errors = client.errors.load(Ordering::Relaxed).saturating_sub(errors_before);
            match &record.recovered_after_ms {
                Some(ms) => {
                    tracing::info!(fault = i + 1, what = %record.description, target = %record.target, recovered_ms = ms, "fault healed, system recovered")
                }
                None => {
                    tracing::warn!(fault = i + 1, what = %record.description, target = %record.target, error = ?record.error, "fault healed, system did NOT recover")
                }
            }
            records.push(record);
        }
        records
    }

    async fn inject(
        &mut self,
        index: usize,
        fault: &Fault,
        start: Instant,
        config: &VerifyConfig,
    ) -> FaultRecord {
        let mut record = FaultRecord {
            index,
            at_s: start.elapsed().as_secs_f64(),
            fault: fault.clone(),
            description: fault.to_string(),
            target: String::new(),
            held_ms: fault.hold_ms(),
            recovered_after_ms: None,
            probe: None,
            detail: None,
            error: None,
            client_errors: 0,
        };
        tracing::info!(fault = index + 1, what = %record.description, "injecting");
        let hold = Duration::from_millis(fault.hold_ms());
        let injected = match fault {
            Fault::KillService { instance, .. } => self.kill_service(instance, hold, &mut record).await,
            Fault::PauseNats { node, .. } => self.node_fault(*node, NodeOut::Pause, hold, &mut record).await,
            Fault::KillNats { node, .. } => self.node_fault(*node, NodeOut::Kill, hold, &mut record).await,
            Fault::QuorumLoss { .. } => self.lose_quorum(hold, &mut record).await,
            Fault::PartitionNats { node, .. } => {
                self.node_fault(*node, NodeOut::Partition, hold, &mut record).await
            }
            Fault::KillDatabase { restart, .. } => self.kill_database(hold, restart, &mut record).await,
            Fault::RollingRestart => self.rolling_restart(&mut record).await,
            Fault::GatewayOutage { .. } | Fault::GatewayErrors { .. } | Fault::GatewaySlow { .. } => {
                record.target = "gateway-1".into();
                self.gateway_fault(fault, hold).await
            }
            Fault::Upgrade { stage } => self.upgrade(*stage, &mut record).await,
            Fault::DuplicateStorm { per_stream } => {
                record.target = "ORDERS, INVENTORY, PAYMENTS".into();
                match storm(&self.js, *per_stream, index).await {
                    Ok(detail) => {
                        record.detail = Some(detail);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        let healed = Instant::now();
        if let Err(e) = injected {
            record.error = Some(format!("{e:#}"));
            // Bring back whatever the failed step left down before probing.
            self.ensure_running().await;
        }
        match self.probe(config.seed, index, healed + config.recovery_timeout).await {
            Ok(outcome) => {
                record.recovered_after_ms =
                    Some(u64::try_from(healed.elapsed().as_millis()).unwrap_or(u64::MAX));
                record.probe = Some(outcome);
            }
            Err(e) => {
                let e = format!("probe: {e:#}");
                record.error = Some(match record.error.take() {
                    Some(prev) => format!("{prev}; {e}"),
                    None => e,
                });
            }
        }
        if matches!(fault, Fault::QuorumLoss { .. }) {
            // The second node lost comes back only now, so that the probe ran on two.
            self.ensure_running().await;
            if let Err(e) = self.backend.wait_formed(Duration::from_secs(30)).await {
                record.error.get_or_insert(format!("{e:#}"));
            }
        }
        record
    }

    async fn kill_service(
        &mut self,
        instance: &str,
        down: Duration,
        record: &mut FaultRecord,
    ) -> anyhow::Result<()> {
        record.target = self.backend.kill_instance(instance).await?;
        tokio::time::sleep(down).await;
        self.backend.start_instance(instance, &self.http).await
    }

    /// Restarts every instance gracefully, one at a time, each ready before the next goes.
    /// Fails when one did not drain within the grace period (docker killed it); the client
    /// errors meanwhile are counted by the caller and must be none.
    async fn rolling_restart(&mut self, record: &mut FaultRecord) -> anyhow::Result<()> {
        let names = self.backend.instance_names();
        record.target = format!("{} instances", names.len());
        let mut drained = Vec::new();
        let mut killed = Vec::new();
        for name in names {
            let restarted = self.backend.restart_instance(&name, STOP_GRACE, &self.http).await?;
            drained.push(format!("{name} {:.1} s", restarted.drained.as_secs_f64()));
            if !restarted.clean {
                killed.push(name);
            }
        }
        record.detail = Some(format!("stopped (SIGTERM → exit) in: {}", drained.join(", ")));
        anyhow::ensure!(
            killed.is_empty(),
            "did not drain within the {STOP_GRACE:?} grace period and were killed: {}",
            killed.join(", ")
        );
        Ok(())
    }

    /// Kills PostgreSQL and, while it is down, kills `restart` and starts it again: it must come
    /// up live but not ready and wait. After the hold PostgreSQL starts on its volume and
    /// `restart` must become ready by itself (a container that exited instead and was restarted
    /// by docker is reported as a crash).
    async fn kill_database(
        &mut self,
        down: Duration,
        restart: &str,
        record: &mut FaultRecord,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        record.target = format!("{} and {restart}", self.backend.kill_database().await?);
        let waiting = match &mut self.backend {
            Backend::Containers(c) => c.start_without_database(restart, &self.http).await,
            Backend::Processes(_) => anyhow::bail!("killing the database needs the containers backend"),
        };
        tokio::time::sleep(down.saturating_sub(started.elapsed())).await;
        self.backend.start_database().await?;
        let back = Instant::now();
        self.backend.wait_ready(restart, &self.http).await?;
        let waiting = waiting?;
        record.detail = Some(format!(
            "{restart}, started without PostgreSQL: {waiting}; ready {} ms after PostgreSQL was back",
            back.elapsed().as_millis()
        ));
        Ok(())
    }

    /// Moves every service instance to upgrade `stage`, one at a time: SIGTERM (a graceful drain,
    /// so no request in flight fails and nothing is left unpublished), then a start with the
    /// stage's event versions, ready before the next instance goes. Before v1 is retired (a
    /// stage that no longer accepts it), every consumer must have handled every event published
    /// so far, the last v1 among them: what an operator checks before that step.
    async fn upgrade(&mut self, stage: usize, record: &mut FaultRecord) -> anyhow::Result<()> {
        let to = UPGRADE_STAGES.get(stage).with_context(|| format!("no upgrade stage {}", stage + 1))?;
        let before = self.created_counts().await?;
        let mut caught_up = String::new();
        if !to.consume.contains(&Version::V1) {
            let waited = self.wait_consumers_caught_up(Duration::from_secs(120)).await?;
            caught_up = format!("; consumers caught up with the last v1 event in {} ms", waited.as_millis());
        }
        let http = self.http.clone();
        let mut restarted = Vec::new();
        let Backend::Processes(processes) = &mut self.backend else {
            anyhow::bail!("a rolling schema upgrade needs the processes backend")
        };
        for p in processes.procs.iter_mut().filter(|p| p.role != Role::Gateway) {
            for (key, value) in to.env(p.role.as_str()) {
                p.set_env(&key, &value);
            }
            p.stop(Duration::from_secs(15)).await;
            p.start(&http, super::backend::READY_TIMEOUT).await?;
            restarted.push(p.name.clone());
        }
        record.target = restarted.join(", ");
        let after = self.created_counts().await?;
        record.detail = Some(format!(
            "orders.created v1 {}→{}, v2 {}→{}{caught_up}",
            before[0], after[0], before[1], after[1]
        ));
        Ok(())
    }

    /// How many `orders.created` messages ORDERS holds in v1 and in v2 (both lanes).
    async fn created_counts(&self) -> anyhow::Result<[u64; 2]> {
        use futures_util::TryStreamExt as _;
        let stream =
            self.js.get_stream(orderflow_events::subjects::STREAM_ORDERS).await.context("stream ORDERS")?;
        let mut subjects = stream.info_with_subjects("orders.created.>").await.context("ORDERS subjects")?;
        let mut counts = [0u64; 2];
        while let Some((subject, count)) = subjects.try_next().await.context("ORDERS subjects")? {
            match orderflow_events::MessageType::from_subject(&subject).map(|m| m.version) {
                Some(Version::V1) => counts[0] += u64::try_from(count).unwrap_or(0),
                Some(Version::V2) => counts[1] += u64::try_from(count).unwrap_or(0),
                None => {}
            }
        }
        Ok(counts)
    }

    /// Waits until every durable consumer of the event streams has acknowledged everything its
    /// stream held when called (the last sequence, or all of its own filter's messages).
    async fn wait_consumers_caught_up(&self, timeout: Duration) -> anyhow::Result<Duration> {
        use futures_util::StreamExt as _;
        use orderflow_events::subjects::{STREAM_INVENTORY, STREAM_ORDERS, STREAM_PAYMENTS};
        let started = Instant::now();
        let mut targets = Vec::new();
        for name in [STREAM_ORDERS, STREAM_INVENTORY, STREAM_PAYMENTS] {
            let mut stream = self.js.get_stream(name).await.with_context(|| format!("stream {name}"))?;
            let last =
                stream.info().await.with_context(|| format!("stream {name} info"))?.state.last_sequence;
            let mut names = stream.consumer_names();
            while let Some(consumer) = names.next().await {
                targets.push((
                    stream.clone(),
                    consumer.with_context(|| format!("consumers of {name}"))?,
                    last,
                ));
            }
        }
        for (stream, consumer, last) in targets {
            loop {
                let info =
                    stream.consumer_info(&consumer).await.with_context(|| format!("consumer {consumer}"))?;
                // Caught up: its ack floor passed `last`, or nothing of its filter is left.
                if info.ack_floor.stream_sequence >= last
                    || (info.num_pending == 0 && info.num_ack_pending == 0)
                {
                    break;
                }
                anyhow::ensure!(
                    started.elapsed() < timeout,
                    "consumer {consumer} did not catch up with sequence {last} within {timeout:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(started.elapsed())
    }

    /// The node that leads the ORDERS stream's Raft group now, if one does.
    async fn stream_leader(&self) -> Option<usize> {
        let mut stream = self.js.get_stream(orderflow_events::subjects::STREAM_ORDERS).await.ok()?;
        let info = tokio::time::timeout(Duration::from_secs(5), stream.info()).await.ok()?.ok()?;
        let leader = info.cluster.as_ref()?.leader.clone()?;
        self.backend.node_names().iter().position(|n| *n == leader)
    }

    /// The ORDERS stream's leader now, or a node that is not it.
    async fn pick_node(&self, choice: NodeChoice) -> (usize, String) {
        let names = self.backend.node_names();
        let leader = self.stream_leader().await;
        let i = match (choice, leader) {
            (NodeChoice::Leader, Some(l)) => l,
            (NodeChoice::Follower, Some(l)) => (l + 1) % names.len().max(1),
            // No leader known (an election is under way): any node.
            (_, None) => 0,
        };
        let role = match (choice, leader) {
            (_, None) => "no ORDERS leader known",
            (NodeChoice::Leader, _) => "leader of ORDERS",
            (NodeChoice::Follower, _) => "follower of ORDERS",
        };
        (i, format!("{} ({role})", names.get(i).map_or("?", String::as_str)))
    }

    /// Takes a node out (frozen, killed or cut off the network), holds, brings it back. A killed
    /// or cut-off node must then serve JetStream again; a frozen one simply resumes. A cut-off
    /// node runs on alone: a partition, not a crash (a leader among its followers steps down
    /// once it cannot reach them).
    async fn node_fault(
        &mut self,
        choice: NodeChoice,
        out: NodeOut,
        hold: Duration,
        record: &mut FaultRecord,
    ) -> anyhow::Result<()> {
        let (i, target) = self.pick_node(choice).await;
        record.target = target;
        match out {
            NodeOut::Pause => self.backend.pause_node(i).await?,
            NodeOut::Kill => self.backend.kill_node(i).await?,
            NodeOut::Partition => self.backend.partition_node(i).await?,
        }
        tokio::time::sleep(hold).await;
        match out {
            NodeOut::Pause => return self.backend.resume_node(i).await,
            NodeOut::Kill => self.backend.start_node(i).await?,
            NodeOut::Partition => self.backend.heal_node(i).await?,
        }
        self.backend.wait_formed(Duration::from_secs(30)).await
    }

    /// Kills the ORDERS leader and a follower, holds, restarts the leader that was: quorum is back
    /// (the other node stays down until the probe is done).
    async fn lose_quorum(&mut self, down: Duration, record: &mut FaultRecord) -> anyhow::Result<()> {
        let (leader, leader_name) = self.pick_node(NodeChoice::Leader).await;
        let names = self.backend.node_names();
        let follower = (leader + 1) % names.len().max(1);
        record.target = format!("{leader_name} and {}", names.get(follower).map_or("?", String::as_str));
        self.backend.kill_node(leader).await?;
        self.backend.kill_node(follower).await?;
        tokio::time::sleep(down).await;
        // What the order service accepted meanwhile waits in its outbox: the evidence that
        // publishes failed and were kept, not lost.
        let order_db = self.db(Role::Order)?;
        let held = async {
            let db = orderflow_platform::Db::open(&order_db.url, &order_db.schema).await?;
            let backlog = orderflow_platform::OutboxRelay::backlog(&db).await;
            db.close().await;
            Ok::<_, anyhow::Error>(backlog?.unsent)
        }
        .await;
        record.detail = Some(match held {
            Ok(n) => format!("{n} events held in the order service's outbox when quorum returned"),
            Err(e) => format!("order outbox unreadable: {e:#}"),
        });
        self.backend.start_node(leader).await?;
        self.backend.wait_formed(Duration::from_secs(30)).await
    }

    /// Sets the gateway fault, holds it, clears it again.
    async fn gateway_fault(&self, fault: &Fault, hold: Duration) -> anyhow::Result<()> {
        let (on, off) = fault.gateway_patches().context("not a gateway fault")?;
        let url = format!("{}/admin/faults", self.url_of(Role::Gateway)?);
        put_json(&self.http, &url, &self.admin_token, &on).await?;
        tokio::time::sleep(hold).await;
        put_json(&self.http, &url, &self.admin_token, &off).await
    }

    pub(super) async fn clear_gateway_faults(&self) -> anyhow::Result<()> {
        let url = format!("{}/admin/faults", self.url_of(Role::Gateway)?);
        let clear = serde_json::json!({"outage": false, "error_rate": 0.0, "latency_ms": 0});
        put_json(&self.http, &url, &self.admin_token, &clear).await
    }
}

/// How a NATS node fault takes its node out.
#[derive(Clone, Copy)]
enum NodeOut {
    Pause,
    Kill,
    Partition,
}

/// How long an instance may drain on SIGTERM before it is killed: compose's
/// `stop_grace_period` (35 s; the services' own drain deadline is 30 s).
const STOP_GRACE: Duration = Duration::from_secs(35);

/// Re-publishes the last `per_stream` events of each stream; returns what happened.
async fn storm(js: &jetstream::Context, per_stream: usize, index: usize) -> anyhow::Result<String> {
    use orderflow_events::subjects::{STREAM_INVENTORY, STREAM_ORDERS, STREAM_PAYMENTS};
    let (mut sent, mut dropped, mut stored) = (0_u64, 0_u64, 0_u64);
    for name in [STREAM_ORDERS, STREAM_INVENTORY, STREAM_PAYMENTS] {
        let mut stream = js.get_stream(name).await.with_context(|| format!("stream {name}"))?;
        let state = stream.info().await.with_context(|| format!("stream {name} info"))?.state.clone();
        if state.messages == 0 {
            continue;
        }
        let first = state.first_sequence.max(state.last_sequence.saturating_sub(per_stream as u64 - 1));
        for seq in first..=state.last_sequence {
            let Ok(message) = stream.get_raw_message(seq).await else { continue };
            let mut headers = message.headers.clone();
            let original = headers.get(async_nats::header::NATS_MESSAGE_ID).map(|v| v.as_str().to_owned());
            match original {
                // Half keep their id: inside the dedup window JetStream must drop them.
                Some(_) if seq % 2 == 0 => {}
                // Half get a new one, as a duplicate that arrives after the window would.
                other => headers.insert(
                    async_nats::header::NATS_MESSAGE_ID,
                    format!("{}:storm-{index}", other.unwrap_or_else(|| format!("{name}-{seq}"))).as_str(),
                ),
            }
            let ack = js
                .send_publish(
                    message.subject.clone(),
                    jetstream::message::PublishMessage::build()
                        .headers(headers)
                        .payload(message.payload.clone()),
                )
                .await
                .with_context(|| format!("re-publishing {name} #{seq}"))?
                .await
                .with_context(|| format!("re-publishing {name} #{seq}"))?;
            sent += 1;
            if ack.duplicate {
                dropped += 1;
            } else {
                stored += 1;
            }
        }
    }
    Ok(format!(
        "{sent} events re-published: {dropped} dropped by JetStream as duplicates, {stored} delivered again"
    ))
}

/// `PUT url` with the admin token and a JSON body.
async fn put_json(
    http: &reqwest::Client,
    url: &str,
    admin_token: &str,
    body: &serde_json::Value,
) -> anyhow::Result<()> {
    let res = http
        .put(url)
        .bearer_auth(admin_token)
        .json(body)
        .send()
        .await
        .with_context(|| format!("PUT {url}"))?;
    anyhow::ensure!(res.status().is_success(), "PUT {url}: HTTP {}", res.status());
    Ok(())
}
