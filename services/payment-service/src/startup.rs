//! Builds the payment service from its [`Settings`] and runs it until shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use orderflow_events::{EventKind, InventoryReserved};
use orderflow_messaging::{ConsumerRuntime, ConsumerSpec, Delivery, RuntimeConfig};
use orderflow_platform::http::HealthCheck;
use orderflow_platform::service::{Infra, InfraConfig, Running};
use orderflow_platform::{Db, Migration};
use orderflow_resilience::{Backoff, BreakerState, CircuitBreaker, Clock, SystemClock};
use orderflow_telemetry::metrics::names;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::configuration::Settings;
use crate::gateway::GatewayClient;
use crate::handlers;

/// The service's migrations.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 100,
    description: "payments",
    sql: include_str!("../migrations/0100_payments.sql"),
}];

/// What handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The gateway client.
    pub gateway: GatewayClient,
    /// The breaker around it.
    pub breaker: CircuitBreaker,
    /// The schedule of gateway retries; each charge takes a fresh copy.
    pub retry: Backoff,
    /// The time the breaker, the retries and the `max_wait` budget follow.
    pub clock: Arc<dyn Clock>,
    /// How long an order may wait for its payment.
    pub max_wait: Duration,
    /// Cancelled when the service shuts down.
    pub shutdown: CancellationToken,
}

/// A built, not yet running, payment service.
#[derive(Debug)]
pub struct Application {
    settings: Settings,
    infra: Infra,
    listener: TcpListener,
    port: u16,
    breaker: CircuitBreaker,
    retry: Backoff,
    clock: Arc<dyn Clock>,
    gateway: GatewayClient,
}

impl Application {
    /// Binds the listener, connects NATS, opens the database, validates the breaker settings.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// [`build`](Self::build), with the breaker, the gateway retries and the `max_wait` budget
    /// on `clock` instead of real time: tests pass a `ManualClock` to open, probe and time out
    /// without waiting.
    pub async fn build_with_clock(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let breaker = CircuitBreaker::with_clock(settings.breaker(), clock.clone())?;
        let retry = Backoff::new(handlers::inventory_reserved::GATEWAY_RETRY)?.with_clock(clock.clone());
        let gateway =
            GatewayClient::new(&settings.gateway_url, Duration::from_millis(settings.gateway_timeout_ms))?;
        let listener =
            orderflow_platform::http::bind(&settings.host, settings.port, "payment-service").await?;
        let port = listener.local_addr()?.port();
        let infra = Infra::connect(InfraConfig {
            service: "payment-service",
            nats_url: &settings.nats_url,
            database_url: &settings.database_url,
            db_schema: &settings.db_schema,
            migrations: MIGRATIONS,
            stream_replicas: settings.stream_replicas,
        })
        .await?;
        Ok(Self { settings, infra, listener, port, breaker, retry, clock, gateway })
    }

    /// The bound HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The circuit breaker (shared with the running service).
    pub fn breaker(&self) -> CircuitBreaker {
        self.breaker.clone()
    }

    /// The database (shared pool).
    pub fn db(&self) -> &Db {
        &self.infra.db
    }

    /// Runs until `shutdown` is cancelled, then drains.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self { settings, infra, listener, breaker, retry, clock, gateway, .. } = self;
        let state = AppState {
            db: infra.db.clone(),
            gateway,
            breaker: breaker.clone(),
            retry,
            clock,
            max_wait: Duration::from_secs(settings.max_wait_secs),
            shutdown: shutdown.clone(),
        };
        let paused = pause_while_open(breaker.clone(), shutdown.clone());
        // A charge may wait for the breaker up to max_wait; the runtime must not abandon it first.
        let runtime = RuntimeConfig {
            concurrency: settings.consumer_concurrency,
            handler_timeout: state.max_wait + Duration::from_secs(60),
            ..RuntimeConfig::default()
        };
        let consumers: Vec<_> = [
            ConsumerSpec::express_for_event(crate::SERVICE, EventKind::InventoryReserved),
            ConsumerSpec::for_event(crate::SERVICE, EventKind::InventoryReserved),
        ]
        .into_iter()
        .map(|spec| {
            let s = state.clone();
            ConsumerRuntime::new(infra.js.clone(), spec, move |d: Delivery<InventoryReserved>| {
                handlers::inventory_reserved::handle(s.clone(), d)
            })
            .with_config(runtime.clone())
            .with_pause(paused.clone())
            .spawn(shutdown.clone())
        })
        .collect();
        // An open breaker keeps the service ready: orders wait for the gateway instead of failing.
        let health = infra.health().with(HealthCheck::consumers(
            consumers.iter().map(|c| (c.name().to_owned(), c.watch_state())).collect(),
        ));
        orderflow_platform::service::run(
            Running {
                infra,
                listener,
                router: Router::new(),
                health,
                consumers,
                shutdown_timeout: Duration::from_secs(settings.shutdown_timeout_secs),
                ready_drain_delay: Duration::from_millis(settings.ready_drain_delay_ms),
                micro_endpoints: Vec::new(),
            },
            shutdown,
        )
        .await
    }
}

/// `true` while the breaker is open. It also drives the breaker from open to half-open when
/// nobody is calling it, so a paused consumer resumes to send the probe.
fn pause_while_open(breaker: CircuitBreaker, shutdown: CancellationToken) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(breaker.state() == BreakerState::Open);
    let mut states = breaker.subscribe();
    let labels = [("service", "payment-service"), ("breaker", "payment_gateway")];
    tokio::spawn(async move {
        let mut last = None;
        loop {
            let state = breaker.state();
            metrics::gauge!(names::BREAKER_STATE, &labels).set(f64::from(state.gauge_value()));
            if last.is_some_and(|l| l != state) {
                let [s, b] = labels;
                metrics::counter!(names::BREAKER_TRANSITIONS, &[s, b, ("to", state.as_str())]).increment(1);
            }
            last = Some(state);
            let open = state == BreakerState::Open;
            tx.send_replace(open);
            if open {
                tracing::warn!("payment gateway breaker open; pausing the payment consumers");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = breaker.wait_until_probe(), if open => {}
                changed = states.changed(), if !open => if changed.is_err() { return },
            }
        }
    });
    rx
}
