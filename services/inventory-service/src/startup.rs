//! Builds the service from [`Settings`] and runs it until a shutdown token is cancelled.
//!
//! [`Application::build`] does everything that can fail at start-up (bind, connect, migrate,
//! provision) so that a misconfiguration fails before anything runs;
//! [`Application::run_until_stopped`] runs the HTTP API, the six consumers and the outbox relay,
//! and drains them in order when asked to stop.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use orderflow_messaging::topology::provision;
use orderflow_messaging::{ConnectConfig, ConsumerHandle, Publisher, Topology, connect};
use orderflow_platform::http::{Health, HealthCheck};
use orderflow_platform::{Db, OutboxRelay};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::configuration::Settings;
use crate::handlers::{self, HandlerContext, SOURCE};
use crate::routes::{self, AppState};

/// The service's own migrations (the platform adds its outbox and inbox).
pub const MIGRATIONS: [orderflow_platform::Migration; 1] = [orderflow_platform::Migration {
    version: 100,
    description: "inventory products and reservations",
    sql: include_str!("../migrations/0100_inventory.sql"),
}];

/// A built, not yet running, inventory service.
#[derive(Debug)]
pub struct Application {
    settings: Settings,
    listener: TcpListener,
    port: u16,
    client: async_nats::Client,
    js: jetstream::Context,
    db: Db,
}

impl Application {
    /// Binds the HTTP listener (port 0 allowed), connects NATS (with the messaging crate's
    /// backoff), opens and migrates the DB, provisions JetStream, and seeds the demo catalog when
    /// `seed_demo_catalog` is set.
    ///
    /// # Errors
    /// The port is taken, NATS stays unreachable, the database cannot be opened or migrated, or
    /// provisioning fails.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener =
            orderflow_platform::http::bind(&settings.host, settings.port, "inventory-service").await?;
        let port = listener.local_addr().context("reading the bound HTTP address")?.port();
        let db = Db::connect(&settings.database_url, &settings.db_schema, &MIGRATIONS)
            .await
            .context("opening the inventory database")?;
        let client = connect(&ConnectConfig::new(settings.nats_url.clone(), SOURCE)).await?;
        let js = jetstream::new(client.clone());
        provision(&js, &Topology::orderflow(settings.stream_replicas.max(1)))
            .await
            .context("provisioning JetStream streams and consumers")?;
        if settings.seed_demo_catalog {
            let created = crate::seed_demo_catalog(&db).await.context("seeding the demo catalog")?;
            tracing::info!(created, "demo catalog seeded");
        }
        tracing::info!(port, settings = ?settings, "inventory-service built");
        Ok(Self { settings, listener, port, client, js, db })
    }

    /// The bound HTTP port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The service's database (to seed or inspect it in process).
    #[must_use]
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Serves HTTP, runs the consumers (standard + express lanes) and the outbox relay until
    /// `shutdown` is cancelled; then: readiness → 503, HTTP stops accepting and finishes in-flight
    /// requests, consumers stop fetching and finish in-flight handlers, the outbox is flushed, the
    /// NATS connection drained — all bounded by the shutdown deadline.
    ///
    /// # Errors
    /// The HTTP server failed, or the drain did not finish before the deadline.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self { settings, listener, client, js, db, .. } = self;
        let timeout = settings.shutdown_timeout();

        let relay = OutboxRelay::new(db.clone(), Publisher::new(js.clone()));
        let ctx = HandlerContext { db: db.clone(), outbox: relay.handle() };
        let stop_consumers = CancellationToken::new();
        let consumers = handlers::spawn_all(&js, &ctx, &settings.runtime_config(), &stop_consumers);
        let states = consumers.iter().map(|c| (c.name().to_owned(), c.watch_state())).collect();
        let health = Health::new()
            .with(HealthCheck::nats(client.clone()))
            .with(HealthCheck::database(db.clone()))
            .with(HealthCheck::consumers(states));

        let stop_http = CancellationToken::new();
        let router = routes::router(AppState { db: db.clone() }, health.clone());
        let mut http = tokio::spawn(orderflow_platform::http::serve(listener, router, stop_http.clone()));
        let stop_relay = CancellationToken::new();
        let relay = tokio::spawn(relay.run(stop_relay.clone(), timeout));
        tracing::info!("inventory-service running");

        let http_failed = tokio::select! {
            _ = shutdown.cancelled() => None,
            r = &mut http => Some(match r {
                Ok(Ok(())) => anyhow::anyhow!("the HTTP server stopped unexpectedly"),
                Ok(Err(e)) => anyhow::Error::new(e).context("the HTTP server failed"),
                Err(e) => anyhow::Error::new(e).context("the HTTP server task failed"),
            }),
        };
        let deadline = Instant::now() + timeout;
        tracing::info!(deadline = ?timeout, "shutting down: draining");
        health.start_draining();
        if http_failed.is_none() && settings.ready_drain_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(settings.ready_drain_delay_ms).min(timeout / 2)).await;
        }

        let drained = tokio::time::timeout_at(deadline, async {
            stop_http.cancel();
            stop_consumers.cancel();
            let http_result = async {
                if http_failed.is_some() {
                    return Ok(());
                }
                match (&mut http).await {
                    Ok(r) => r.context("the HTTP server failed while draining"),
                    Err(e) => Err(anyhow::Error::new(e).context("the HTTP server task failed")),
                }
            };
            let (http_result, _) = tokio::join!(
                http_result,
                futures_util::future::join_all(consumers.into_iter().map(ConsumerHandle::join))
            );
            // Handlers have finished: whatever they enqueued is committed; publish it.
            stop_relay.cancel();
            if let Err(e) = relay.await {
                tracing::error!(error = %e, "outbox relay task failed");
            }
            http_result
        })
        .await;

        let nats_drained = drain_nats(&client, deadline).await;
        db.close().await;

        if let Some(e) = http_failed {
            return Err(e);
        }
        match drained {
            Err(_) => {
                http.abort();
                anyhow::bail!("graceful shutdown did not finish within {timeout:?}")
            }
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => {
                nats_drained?;
                tracing::info!("inventory-service stopped cleanly");
                Ok(())
            }
        }
    }
}

/// Flushes pending publishes and acks, then drains the connection (subscriptions unsubscribed,
/// connection closed), waiting until the connection task has exited.
async fn drain_nats(client: &async_nats::Client, deadline: Instant) -> anyhow::Result<()> {
    // Even past the main deadline, give the final flush a moment: acks are cheap and losing them
    // means redeliveries.
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
