//! The payment service's wiring on the kernel: the gateway client, its circuit breaker and retry
//! schedule on one clock, and the `inventory.reserved` consumers (both lanes), paused while the
//! breaker is open.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use orderflow_events::EventKind;
use orderflow_messaging::Delivery;
use orderflow_platform::kernel::{Service, Wiring};
use orderflow_platform::{Db, Migration};
use orderflow_resilience::{Backoff, BreakerState, CircuitBreaker, Clock, SystemClock};
use orderflow_telemetry::metrics::names;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::configuration::{PaymentFlags, Settings};
use crate::gateway::GatewayClient;
use crate::handlers;

/// The service's migrations.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 100,
    description: "payments",
    sql: include_str!("../migrations/0100_payments.sql"),
}];

/// What handlers share.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    /// The database.
    pub(crate) db: Db,
    /// The gateway client.
    pub(crate) gateway: GatewayClient,
    /// The breaker around it.
    pub(crate) breaker: CircuitBreaker,
    /// The schedule of gateway retries; each charge takes a fresh copy.
    pub(crate) retry: Backoff,
    /// The time the breaker, the retries and the `max_wait` budget follow.
    pub(crate) clock: Arc<dyn Clock>,
    /// How long an order may wait for its payment.
    pub(crate) max_wait: Duration,
    /// Cancelled when the service shuts down.
    pub(crate) shutdown: CancellationToken,
}

/// The payment service, as the kernel runs it: the gateway client, and the breaker and retry
/// schedule around it.
#[derive(Debug)]
pub struct PaymentService {
    breaker: CircuitBreaker,
    retry: Backoff,
    clock: Arc<dyn Clock>,
    gateway: GatewayClient,
}

/// The largest `max_wait_secs` accepted (one day): far above SPEC's 5 minutes, and small enough
/// that every deadline computed from it is a real instant.
pub(crate) const MAX_WAIT_LIMIT_SECS: u64 = 24 * 3600;

/// A built, not yet running, payment service.
pub type Application = orderflow_platform::kernel::Application<PaymentService>;

impl PaymentService {
    /// The service with the breaker, the gateway retries and the `max_wait` budget on `clock`
    /// instead of real time: tests pass a `ManualClock` (to
    /// [`Application::build_with`](orderflow_platform::kernel::Application::build_with)) to
    /// open, probe and time out without waiting.
    pub fn with_clock(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            settings.max_wait_secs <= MAX_WAIT_LIMIT_SECS,
            "payment.max_wait_secs is {}; at most {MAX_WAIT_LIMIT_SECS} (one day): an order must not \
             hold its consumer slot and its reservation for longer",
            settings.max_wait_secs
        );
        let breaker = CircuitBreaker::with_clock(settings.breaker(), clock.clone())?;
        let retry = Backoff::new(handlers::inventory_reserved::GATEWAY_RETRY)?.with_clock(clock.clone());
        let gateway = GatewayClient::new(
            &settings.gateway_url,
            Duration::from_millis(settings.gateway_timeout_ms),
            settings.gateway_ca.as_deref(),
        )?;
        Ok(Self { breaker, retry, clock, gateway })
    }

    /// The circuit breaker (shared with the running service).
    pub fn breaker(&self) -> CircuitBreaker {
        self.breaker.clone()
    }
}

impl Service for PaymentService {
    const NAME: &'static str = "payment-service";
    const SECTION: &'static str = crate::SERVICE;
    const MIGRATIONS: &'static [Migration] = MIGRATIONS;
    type Flags = PaymentFlags;
    type Settings = Settings;

    fn new(settings: &Settings) -> anyhow::Result<Self> {
        Self::with_clock(settings, Arc::new(SystemClock))
    }

    fn wire(self, settings: &Settings, wiring: &mut Wiring) -> Router {
        let Self { breaker, retry, clock, gateway } = self;
        let state = AppState {
            db: wiring.db().clone(),
            gateway,
            breaker: breaker.clone(),
            retry,
            clock,
            max_wait: Duration::from_secs(settings.max_wait_secs),
            shutdown: wiring.shutdown().clone(),
        };
        let paused = pause_while_open(breaker, wiring.shutdown().clone());
        // A charge may wait for the breaker up to max_wait; the runtime must not abandon it first,
        // whatever `consumer.handler_timeout_secs` says.
        let at_least = state.max_wait.saturating_add(Duration::from_secs(60));
        wiring
            .tune(|r| r.handler_timeout = r.handler_timeout.max(at_least))
            .pause_while(paused)
            .consume(EventKind::InventoryReserved, move |d: Delivery<_>| {
                handlers::inventory_reserved::handle(state.clone(), d)
            });
        // An open breaker keeps the service ready: orders wait for the gateway instead of failing.
        Router::new()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_max_wait_beyond_one_day_is_refused_at_start_up_instead_of_overflowing_later() {
        let huge = Settings { max_wait_secs: u64::MAX, ..Settings::default() };
        let day = Settings { max_wait_secs: MAX_WAIT_LIMIT_SECS, ..Settings::default() };

        assert!(PaymentService::with_clock(&huge, Arc::new(SystemClock)).is_err());
        assert!(PaymentService::with_clock(&day, Arc::new(SystemClock)).is_ok());
    }
}
