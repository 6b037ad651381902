//! What a run does with the deployment: the load with the fault schedule beside it, probe orders,
//! then quiescence, the invariant check and the report.

use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::procs::Role;
use super::{Deployment, Fault, LoadSummary, PRODUCTS, Probe, VerifyConfig, VerifyReport, plan};
use crate::invariants::{self, Violation};
use crate::load::{self, Endpoints, LoadConfig, QuantityRange, Schedule, Target, Until};

impl Deployment {
    pub(super) async fn exercise(
        &mut self,
        config: &VerifyConfig,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<VerifyReport> {
        let instances = self.backend.instance_names();
        let max_hold_ms = u64::try_from(config.max_hold.as_millis()).unwrap_or(u64::MAX);
        let schedule = plan(config.seed, config.faults, &config.families(), &instances, max_hold_ms);

        let mut load_config = LoadConfig::new(
            Target::Running(Endpoints {
                order_url: self.url_of(Role::Order)?,
                inventory_url: self.url_of(Role::Inventory)?,
                nats_url: self.nats_url.clone(),
                nats_creds: Some(self.nats_creds.clone()),
                nats_tls: self.nats_tls.clone(),
            }),
            Schedule::Open { rate: config.rate },
            Until::Elapsed(config.duration),
        );
        load_config.mix.products = load::ProductMix::parse(PRODUCTS)?;
        load_config.mix.quantity = QuantityRange::parse("1..3")?;
        load_config.max_error_rate = 1.0;
        load_config.check_invariants = false;
        load_config.keep_accepted_ids = true;
        load_config.request_timeout = Duration::from_secs(10);
        load_config.drain_timeout = Duration::from_secs(5);
        load_config.max_inflight = 256;

        let client = load_config.stats.clone();
        let load_start = Instant::now();
        let (load_report, fault_records) = tokio::join!(
            load::run_load(&load_config, shutdown),
            self.run_faults(&schedule, load_start, config, &client, shutdown)
        );
        let load_report = load_report.context("the load driver failed")?;
        let load_ended = Instant::now();
        self.sample_memory(load_start.elapsed().as_secs_f64());

        let mut failures = Vec::new();
        // Whatever died on its own or is still down comes back before the check.
        self.ensure_running().await;
        if let Err(e) = self.clear_gateway_faults().await {
            failures.push(format!("could not clear the gateway faults: {e:#}"));
        }
        failures.extend(self.crashes.iter().cloned());
        for f in &fault_records {
            if matches!(f.fault, Fault::RollingRestart) && f.client_errors > 0 {
                failures.push(format!(
                    "fault {} ({}): {} client request(s) failed during the rolling restart",
                    f.index + 1,
                    f.description,
                    f.client_errors,
                ));
            }
            if let (Some(e), Some(_), Fault::RollingRestart | Fault::KillDatabase { .. }) =
                (&f.error, f.recovered_after_ms, &f.fault)
            {
                // It recovered, but what the fault checks on the way failed: an instance that did
                // not drain within its grace period, one that did not wait for its database.
                // (Other faults' errors — a node slow to serve JetStream again — only count when
                // the system did not recover.)
                failures.push(format!("fault {} ({}) on {}: {e}", f.index + 1, f.description, f.target));
            }
            if f.recovered_after_ms.is_none() {
                failures.push(format!(
                    "fault {} ({}) on {}: no order completed within {:?} after it was healed{}",
                    f.index + 1,
                    f.description,
                    f.target,
                    config.recovery_timeout,
                    f.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
                ));
            }
        }
        if shutdown.is_cancelled() {
            failures.push("interrupted".to_owned());
        }

        let targets = self.targets()?;
        // Ctrl-C: check what is there now instead of waiting for the system to settle.
        let quiet_timeout =
            if shutdown.is_cancelled() { Duration::from_secs(1) } else { config.quiet_timeout };
        let quiet_after_s = match invariants::wait_until_quiet(&targets, quiet_timeout).await {
            Ok(()) => Some(load_ended.elapsed().as_secs_f64()),
            Err(e) => {
                failures.push(format!("{e:#}"));
                None
            }
        };
        let sabotage = match config.sabotage {
            Some(s) => Some(self.sabotage(s).await?),
            None => None,
        };
        let mut accepted = load_report.accepted_ids.clone();
        accepted.extend(fault_records.iter().filter_map(|f| f.probe.as_ref()).map(|p| p.order_id.clone()));
        let mut checked = invariants::check(&targets, &accepted, Some(&self.initial_stock)).await?;
        if load_report.duplicates.mismatched > 0 {
            checked.violations.push(Violation {
                invariant: 0,
                subject: "Idempotency-Key".into(),
                detail: format!(
                    "{} re-sends with the same key named a different order",
                    load_report.duplicates.mismatched
                ),
            });
        }
        if load_report.accepted == 0 {
            failures.push("no order was accepted".into());
        }

        let mut report = VerifyReport {
            passed: false,
            seed: config.seed,
            duration_s: config.duration.as_secs_f64(),
            elapsed_s: 0.0,
            database: self.database_label.clone(),
            nats: self.backend.nats_label(&self.nats_url),
            instances: self.backend.instance_summary(),
            load: LoadSummary {
                rate: config.rate,
                sent: load_report.sent,
                accepted: load_report.accepted,
                errors: load_report.errors,
                error_kinds: load_report.error_kinds.clone(),
                duplicate_key_resends: load_report.duplicates.sent,
                duplicate_key_mismatched: load_report.duplicates.mismatched,
                p99_confirmed_ms: load_report.latency_ms.confirmed_standard.p99,
            },
            probes: fault_records.iter().filter(|f| f.probe.is_some()).count(),
            check: checked,
            faults_injected: fault_records.len(),
            max_recovery_ms: fault_records.iter().filter_map(|f| f.recovered_after_ms).max(),
            recovery_by_kind: super::report::summarize(&fault_records),
            faults: fault_records,
            quiet_after_s,
            memory: self.memory.rows(),
            sabotage,
            failures,
            data_dir: config.data_dir.display().to_string(),
        };
        report.passed = report.check.violations.is_empty() && report.failures.is_empty();
        Ok(report)
    }

    /// Places an express order and waits until it is confirmed or cancelled: the system works
    /// again.
    pub(super) async fn probe(&self, seed: u64, index: usize, deadline: Instant) -> anyhow::Result<Probe> {
        let order_url = self.url_of(Role::Order)?;
        let key = format!("verify-{seed}-{}-probe-{index}", std::process::id());
        let body = serde_json::json!({
            "customer_id": "verify-probe",
            "items": [{"product_id": "sku-001", "quantity": 1}],
            "priority": "express",
        });
        #[derive(Deserialize)]
        struct Created {
            order_id: String,
        }
        #[derive(Deserialize)]
        struct View {
            status: String,
        }
        let mut last = String::from("no answer yet");
        let order_id = loop {
            anyhow::ensure!(Instant::now() < deadline, "the probe order was not accepted: {last}");
            match self
                .http
                .post(format!("{order_url}/orders"))
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
                .await
            {
                Ok(res) if res.status().is_success() => match res.json::<Created>().await {
                    Ok(c) => break c.order_id,
                    Err(e) => last = format!("unreadable answer: {e}"),
                },
                Ok(res) => last = format!("HTTP {}", res.status()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        loop {
            anyhow::ensure!(Instant::now() < deadline, "probe order {order_id} still not terminal: {last}");
            match self.http.get(format!("{order_url}/orders/{order_id}")).send().await {
                Ok(res) if res.status().is_success() => match res.json::<View>().await {
                    Ok(v) if v.status == "confirmed" || v.status == "cancelled" => {
                        return Ok(Probe { order_id, status: v.status });
                    }
                    Ok(v) => last = v.status,
                    Err(e) => last = format!("unreadable answer: {e}"),
                },
                Ok(res) => last = format!("HTTP {}", res.status()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
