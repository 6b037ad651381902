//! Injecting the fault schedule into a running deployment: killing and restarting instances,
//! freezing and killing NATS nodes, gateway faults and duplicate storms, each healed again and
//! followed by a probe order.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::faults::UPGRADE_STAGES;
use super::procs::Role;
use super::{Deployment, Fault, FaultRecord, NodeChoice, VerifyConfig};
use orderflow_events::Version;

impl Deployment {
    /// Injects the schedule, spread evenly over the load's duration, one fault at a time.
    pub(super) async fn run_faults(
        &mut self,
        schedule: &[Fault],
        start: Instant,
        config: &VerifyConfig,
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
            self.note_crashes();
            self.sample_memory(start.elapsed().as_secs_f64());
            let record = self.inject(i, fault, start, config).await;
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
        };
        tracing::info!(fault = index + 1, what = %record.description, "injecting");
        let hold = Duration::from_millis(fault.hold_ms());
        let injected = match fault {
            Fault::KillService { instance, .. } => self.kill_service(instance, hold, &mut record).await,
            Fault::PauseNats { node, .. } => self.pause_nats(*node, hold, &mut record).await,
            Fault::KillNats { node, .. } => self.kill_nats(*node, hold, &mut record).await,
            Fault::QuorumLoss { .. } => self.lose_quorum(hold, &mut record).await,
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
            if let Err(e) = self.cluster.wait_formed(Duration::from_secs(30)).await {
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
        let http = self.http.clone();
        let p = self
            .procs
            .iter_mut()
            .find(|p| p.name == instance)
            .with_context(|| format!("no instance {instance}"))?;
        record.target =
            format!("{instance} (pid {})", p.pid().map_or_else(|| "-".into(), |pid| pid.to_string()));
        p.kill().await;
        tokio::time::sleep(down).await;
        p.start(&http, Duration::from_secs(60)).await
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
        for p in self.procs.iter_mut().filter(|p| p.role != Role::Gateway) {
            for (key, value) in to.env(p.role.as_str()) {
                p.set_env(&key, &value);
            }
            p.stop(Duration::from_secs(15)).await;
            p.start(&http, Duration::from_secs(60)).await?;
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

    /// The ORDERS stream's leader now, or a node that is not it.
    async fn pick_node(&self, choice: NodeChoice) -> (usize, String) {
        let leader = self.cluster.stream_leader(&self.js, orderflow_events::subjects::STREAM_ORDERS).await;
        let i = match (choice, leader) {
            (NodeChoice::Leader, Some(l)) => l,
            (NodeChoice::Follower, Some(l)) => (l + 1) % self.cluster.nodes.len(),
            // No leader known (an election is under way): any node.
            (_, None) => 0,
        };
        let role = match (choice, leader) {
            (_, None) => "no ORDERS leader known",
            (NodeChoice::Leader, _) => "leader of ORDERS",
            (NodeChoice::Follower, _) => "follower of ORDERS",
        };
        (i, format!("{} ({role})", self.cluster.nodes[i].name))
    }

    async fn pause_nats(
        &mut self,
        choice: NodeChoice,
        hold: Duration,
        record: &mut FaultRecord,
    ) -> anyhow::Result<()> {
        let (i, target) = self.pick_node(choice).await;
        record.target = target;
        self.cluster.pause(i)?;
        tokio::time::sleep(hold).await;
        self.cluster.resume(i)
    }

    async fn kill_nats(
        &mut self,
        choice: NodeChoice,
        down: Duration,
        record: &mut FaultRecord,
    ) -> anyhow::Result<()> {
        let (i, target) = self.pick_node(choice).await;
        record.target = target;
        self.cluster.kill(i);
        tokio::time::sleep(down).await;
        self.cluster.restart(i).await?;
        self.cluster.wait_formed(Duration::from_secs(30)).await
    }

    /// Kills the ORDERS leader and a follower, holds, restarts the leader that was: quorum is back
    /// (the other node stays down until the probe is done).
    async fn lose_quorum(&mut self, down: Duration, record: &mut FaultRecord) -> anyhow::Result<()> {
        let (leader, leader_name) = self.pick_node(NodeChoice::Leader).await;
        let follower = (leader + 1) % self.cluster.nodes.len();
        record.target = format!("{leader_name} and {}", self.cluster.nodes[follower].name);
        self.cluster.kill(leader);
        self.cluster.kill(follower);
        tokio::time::sleep(down).await;
        // What the order service accepted meanwhile waits in its outbox: the evidence that
        // publishes failed and were kept, not lost.
        let order_db = self.db(Role::Order)?;
        let held = async {
            let db = orderflow_platform::Db::open(&order_db.url, &order_db.schema).await?;
            let backlog = orderflow_platform::OutboxRelay::backlog(&db).await?;
            Ok::<_, anyhow::Error>(backlog.unsent)
        }
        .await;
        record.detail = Some(match held {
            Ok(n) => format!("{n} events held in the order service's outbox when quorum returned"),
            Err(e) => format!("order outbox unreadable: {e:#}"),
        });
        self.cluster.restart(leader).await?;
        self.cluster.wait_formed(Duration::from_secs(30)).await
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
