//! The start-up and shutdown choreography every service shares (driven by [`crate::kernel`]).
//!
//! [`Infra::connect`] brings up what a service stands on: the database (migrated) and NATS, each
//! waited for with backoff while it is unreachable (`crate::startup`), the JetStream topology, a
//! publisher and the outbox relay. [`run`] serves HTTP (with
//! `/health/*` and `/metrics`) and waits for shutdown, then drains in the order that loses
//! nothing: readiness goes 503 (optionally for a while, so load balancers notice), HTTP stops
//! accepting and finishes in-flight requests, consumers stop fetching and finish in-flight
//! handlers, the outbox relay publishes what those handlers committed, and the NATS connection
//! is flushed and drained — all bounded by one deadline.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use axum::Router;
use axum::routing::get;
use orderflow_messaging::{ConnectConfig, ConsumerHandle, Publisher, Topology, topology::provision};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::discovery::MicroEndpoint;
use crate::http::{Health, HealthCheck};
use crate::outbox::OutboxRelay;
use crate::startup::Progress;
use crate::{Db, Migration};

/// A service's connections.
#[derive(Debug)]
pub(crate) struct Infra {
    /// The service name (`order-service`): the `service` label of its metrics.
    pub(crate) service: &'static str,
    /// The NATS client.
    pub(crate) client: async_nats::Client,
    /// JetStream on it.
    pub(crate) js: jetstream::Context,
    /// The service's database.
    pub(crate) db: Db,
    relay: OutboxRelay,
}

/// Where a service connects.
#[derive(Clone, Debug)]
pub(crate) struct InfraConfig<'a> {
    /// `order-service`, `inventory-service`, …; the NATS client is named `orderflow/<service>`.
    pub(crate) service: &'static str,
    /// `order`, `inventory`, …: its NATS identity when it has credentials.
    pub(crate) section: &'static str,
    /// NATS URL(s).
    pub(crate) nats_url: &'a str,
    /// The service identity's credentials; with them JetStream is not provisioned here.
    pub(crate) nats_creds: Option<&'a std::path::Path>,
    /// TLS to NATS.
    pub(crate) nats_tls: orderflow_messaging::NatsTls,
    /// Database URL.
    pub(crate) database_url: &'a str,
    /// PostgreSQL schema.
    pub(crate) db_schema: &'a str,
    /// The service's migrations.
    pub(crate) migrations: &'a [Migration],
    /// JetStream stream replicas (1 locally, 3 in a cluster).
    pub(crate) stream_replicas: usize,
}

impl Infra {
    /// Opens and migrates the database, connects NATS, provisions JetStream. Waits for the
    /// database and NATS as long as they are unreachable, telling `progress` what it waits for;
    /// fails on a permanent error.
    pub(crate) async fn connect(cfg: InfraConfig<'_>, progress: &Progress) -> anyhow::Result<Self> {
        let service = cfg.service;
        orderflow_telemetry::metrics::install();
        crate::tls::install_crypto_provider();
        let db = crate::startup::open_database(cfg.database_url, cfg.db_schema, cfg.migrations, progress)
            .await
            .with_context(|| format!("{service}: opening the database"))?;
        let connect = ConnectConfig::new(cfg.nats_url, format!("orderflow/{service}"))
            .with_creds(cfg.nats_creds.map(std::path::Path::to_path_buf))
            .with_tls(cfg.nats_tls.clone())
            .as_identity(cfg.section)
            .with_initial_timeout(None);
        // No URL here: a token in it would show (readiness is public); the retries name the
        // servers without their credentials.
        progress.set("connecting to NATS");
        let client = orderflow_messaging::connect_observed(&connect, |retry| {
            progress.waiting(format!(
                "waiting for NATS at {} (attempt {}): {}",
                retry.url, retry.attempt, retry.error
            ));
        })
        .await
        .with_context(|| format!("{service}: connecting to NATS"))?;
        let js = jetstream::new(client.clone());
        if connect.has_creds() {
            // Its own identity may not manage streams or consumers: the admin provisioned them
            // (`orderflow nats provision`); its consumers bind and wait until they exist.
            tracing::info!(service, "NATS identity: binding to the provisioned topology");
        } else {
            progress.set("provisioning JetStream");
            provision(&js, &Topology::orderflow(cfg.stream_replicas.max(1)))
                .await
                .with_context(|| format!("{service}: provisioning JetStream"))?;
        }
        let relay = OutboxRelay::new(db.clone(), Publisher::new(js.clone()), service);
        Ok(Self { service, client, js, db, relay })
    }

    /// Readiness checks for NATS and the database.
    pub(crate) fn health(&self) -> Health {
        Health::new()
            .with(HealthCheck::nats(self.client.clone()))
            .with(HealthCheck::database(self.db.clone()))
    }
}

/// What [`run`] drives.
#[derive(Debug)]
pub(crate) struct Running {
    /// Connections.
    pub(crate) infra: Infra,
    /// The bound listener.
    pub(crate) listener: TcpListener,
    /// The service's routes (health and metrics routes are added here).
    pub(crate) router: Router,
    /// Readiness (checks for consumers already added).
    pub(crate) health: Health,
    /// Consumer runtimes, started with `shutdown` (or a child of it).
    pub(crate) consumers: Vec<ConsumerHandle>,
    /// Bound on the whole drain.
    pub(crate) shutdown_timeout: Duration,
    /// How long readiness answers 503 before the listener closes (0: close at once).
    pub(crate) ready_drain_delay: Duration,
    /// Request-reply endpoints to register with the NATS micro service (besides `status`).
    pub(crate) micro_endpoints: Vec<MicroEndpoint>,
    /// Requests of the service's routes at once before it sheds (`503`).
    pub(crate) max_concurrent_requests: usize,
}

/// Serves until `shutdown`, then drains (see the module docs). Fails if the HTTP server stops on
/// its own or the drain misses its deadline.
pub(crate) async fn run(parts: Running, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Running {
        infra,
        listener,
        router,
        health,
        consumers,
        shutdown_timeout,
        ready_drain_delay,
        micro_endpoints,
        max_concurrent_requests,
    } = parts;
    let service = infra.service;
    let micro_stop = CancellationToken::new();
    crate::discovery::register(&infra.client, service, health.clone(), micro_endpoints, micro_stop.clone())
        .await?;
    let relay_stop = CancellationToken::new();
    let relay = tokio::spawn(infra.relay.run(relay_stop.clone(), shutdown_timeout));
    // Background upkeep, stopped with the first signal of shutdown: stream fill for the
    // near-full alert, inbox pruning past the redelivery horizon.
    tokio::spawn(orderflow_messaging::stream_fill::report(infra.js.clone(), service, shutdown.clone()));
    tokio::spawn(crate::inbox::prune_in_background(
        infra.db.clone(),
        crate::inbox::horizon(),
        shutdown.clone(),
    ));
    let limit = crate::http::shed::Limit::new(max_concurrent_requests, service);
    let app = crate::http::with_defaults(
        router
            .layer(axum::middleware::from_fn_with_state(limit, crate::http::shed::shed))
            .merge(health.clone().router())
            .route("/metrics", get(|| async { crate::http::metrics::render() })),
        service,
    );
    let http_stop = CancellationToken::new();
    let mut server = tokio::spawn(crate::http::serve(listener, app, http_stop.clone()));
    tracing::info!(service, "running");

    let http_failed = tokio::select! {
        _ = shutdown.cancelled() => None,
        r = &mut server => Some(match r {
            Ok(Ok(())) => anyhow::anyhow!("{service}: the HTTP server stopped unexpectedly"),
            Ok(Err(e)) => anyhow::Error::new(e).context(format!("{service}: the HTTP server failed")),
            Err(e) => anyhow::Error::new(e).context(format!("{service}: the HTTP server task failed")),
        }),
    };
    let started = Instant::now();
    let deadline = started + shutdown_timeout;
    tracing::info!(service, deadline = ?shutdown_timeout, "shutting down: draining");
    health.start_draining();
    micro_stop.cancel();
    if http_failed.is_none() && !ready_drain_delay.is_zero() {
        tokio::time::sleep(ready_drain_delay.min(shutdown_timeout / 2)).await;
    }
    http_stop.cancel();
    let drain = async {
        if http_failed.is_none() {
            match server.await {
                Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server error while draining"),
                Err(e) => tracing::warn!(error = %e, "HTTP server task failed while draining"),
                Ok(Ok(())) => {}
            }
        }
        futures_util::future::join_all(consumers.into_iter().map(ConsumerHandle::join)).await;
        // Handlers have finished: whatever they enqueued is committed; publish it.
        relay_stop.cancel();
        if let Err(e) = relay.await {
            tracing::warn!(error = %e, "outbox relay task failed");
        }
    };
    let drained = tokio::time::timeout_at(deadline, drain).await;
    let nats = drain_nats(&infra.client, deadline).await;
    infra.db.close().await;
    if let Some(e) = http_failed {
        return Err(e);
    }
    drained.map_err(|_| anyhow::anyhow!("{service}: shutdown did not finish within {shutdown_timeout:?}"))?;
    nats?;
    tracing::info!(service, took = ?started.elapsed(), "drained cleanly");
    Ok(())
}

/// Flushes pending publishes and acks, then drains the connection and waits until it is closed.
async fn drain_nats(client: &async_nats::Client, deadline: Instant) -> anyhow::Result<()> {
    // Even past the main deadline, give the final flush a moment: losing acks means redeliveries.
    let deadline = deadline.max(Instant::now() + Duration::from_secs(1));
    tokio::time::timeout_at(deadline, async {
        client.flush().await.context("flushing NATS")?;
        client.drain().await.context("draining NATS")?;
        // The client reports no state change when a drain completes, but every command fails
        // once the connection task has exited: that is the signal.
        while client.flush().await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok::<_, anyhow::Error>(())
    })
    .await
    .map_err(|_| anyhow::anyhow!("draining the NATS connection timed out"))?
}
