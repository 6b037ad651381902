//! The start-up and shutdown choreography every service shares.
//!
//! [`Infra::connect`] brings up what a service stands on: NATS (with backoff), the JetStream
//! topology, the database (migrated), a publisher and the outbox relay. [`run`] serves HTTP and
//! waits for shutdown, then drains in the order that loses nothing: readiness goes 503, HTTP stops
//! accepting and finishes in-flight requests, consumers stop fetching and finish in-flight
//! handlers (they were started with the same token), the outbox relay publishes what those
//! handlers committed, and the NATS connection drains — all bounded by a deadline.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use axum::Router;
use orderflow_messaging::{ConnectConfig, ConsumerHandle, Publisher, Topology, topology::provision};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http::{Health, HealthCheck};
use crate::outbox::{OutboxHandle, OutboxRelay};
use crate::{Db, Migration};

/// A service's connections.
#[derive(Debug)]
pub struct Infra {
    /// The NATS client.
    pub client: async_nats::Client,
    /// JetStream on it.
    pub js: jetstream::Context,
    /// The service's database.
    pub db: Db,
    /// Direct publishing (the outbox relay uses its own clone).
    pub publisher: Publisher,
    /// Wakes the outbox relay after a commit.
    pub outbox: OutboxHandle,
    relay: OutboxRelay,
}

/// Where a service connects.
#[derive(Clone, Debug)]
pub struct InfraConfig<'a> {
    /// Client name, `orderflow/<service>`.
    pub name: &'a str,
    /// NATS URL(s).
    pub nats_url: &'a str,
    /// Database URL.
    pub database_url: &'a str,
    /// PostgreSQL schema.
    pub db_schema: &'a str,
    /// The service's migrations.
    pub migrations: &'a [Migration],
}

impl Infra {
    /// Connects NATS, provisions JetStream, opens and migrates the database.
    pub async fn connect(cfg: InfraConfig<'_>) -> anyhow::Result<Self> {
        let client = orderflow_messaging::connect(&ConnectConfig::new(cfg.nats_url, cfg.name))
            .await
            .with_context(|| format!("{}: connecting to NATS", cfg.name))?;
        let js = jetstream::new(client.clone());
        provision(&js, &Topology::orderflow(1))
            .await
            .with_context(|| format!("{}: provisioning JetStream", cfg.name))?;
        let db = Db::connect(cfg.database_url, cfg.db_schema, cfg.migrations)
            .await
            .with_context(|| format!("{}: opening the database", cfg.name))?;
        let publisher = Publisher::new(js.clone());
        let relay = OutboxRelay::new(db.clone(), publisher.clone());
        Ok(Self { outbox: relay.handle(), client, js, db, publisher, relay })
    }

    /// Readiness checks for NATS and the database.
    pub fn health(&self) -> Health {
        Health::new()
            .with(HealthCheck::nats(self.client.clone()))
            .with(HealthCheck::database(self.db.clone()))
    }
}

/// What [`run`] drives.
#[derive(Debug)]
pub struct Running {
    /// Connections.
    pub infra: Infra,
    /// The bound listener.
    pub listener: TcpListener,
    /// The service's routes (health routes are added here).
    pub router: Router,
    /// Readiness (checks for consumers already added).
    pub health: Health,
    /// Consumer runtimes, started with `shutdown` (or a child of it).
    pub consumers: Vec<ConsumerHandle>,
    /// Bound on the drain.
    pub shutdown_timeout: Duration,
}

/// Serves until `shutdown`, then drains (see the module docs).
pub async fn run(parts: Running, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Running { infra, listener, router, health, consumers, shutdown_timeout } = parts;
    let relay_stop = CancellationToken::new();
    let relay = tokio::spawn(infra.relay.run(relay_stop.clone(), shutdown_timeout));
    let app = crate::http::with_defaults(router.merge(health.clone().router()));
    let http_stop = CancellationToken::new();
    let server = tokio::spawn(crate::http::serve(listener, app, http_stop.clone()));

    shutdown.cancelled().await;
    let started = tokio::time::Instant::now();
    health.start_draining();
    http_stop.cancel();
    let drain = async {
        match server.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server error during shutdown"),
            Err(e) => tracing::warn!(error = %e, "HTTP server task failed"),
            Ok(Ok(())) => {}
        }
        for c in consumers {
            c.join().await;
        }
        relay_stop.cancel();
        if let Err(e) = relay.await {
            tracing::warn!(error = %e, "outbox relay task failed");
        }
        if let Err(e) = infra.client.drain().await {
            tracing::warn!(error = %e, "draining the NATS connection failed");
        }
        infra.db.close().await;
    };
    match tokio::time::timeout(shutdown_timeout, drain).await {
        Ok(()) => {
            tracing::info!(took = ?started.elapsed(), "drained cleanly");
            Ok(())
        }
        Err(_) => anyhow::bail!("shutdown did not finish within {shutdown_timeout:?}"),
    }
}
