//! `spawn_app`: the payment service on the shared harness ([`TestService`], which has the HTTP
//! client, JetStream, the database, publishing, streams and `wait_until_quiet`), next to an
//! in-process gateway-sim; and payment's own: the gateway's admin API, the payments table, its
//! events about an order, and driving a manual clock.

pub use orderflow_test_support::service::{Received, WAIT};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use orderflow_events::{
    CorrelationId, Currency, Envelope, InventoryReserved, OrderId, ProductId, Quantity, ReservationId,
    ReservedLine,
};
use orderflow_platform::{SqlError, args};
use orderflow_resilience::{CircuitBreaker, Clock, ManualClock, SystemClock};
use orderflow_test_support::service::{TEST_ADMIN_TOKEN, TestService};
use orderflow_test_support::{DbBackend, eventually};
use payment_service::{PaymentService, Settings};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How a test wants the service built.
#[derive(Default)]
pub struct Options {
    /// Run the service on this clock instead of real time.
    pub clock: Option<ManualClock>,
    /// Changes to the settings the test needs.
    pub settings: Option<fn(&mut Settings)>,
}

/// The running service, its gateway and what a test needs around them.
pub struct TestApp {
    service: TestService<PaymentService>,
    /// `http://127.0.0.1:<port>` of the gateway-sim.
    pub gateway: String,
    /// The service's circuit breaker.
    pub breaker: CircuitBreaker,
    /// The service's manual clock, when the test asked for one.
    pub clock: Option<ManualClock>,
    /// Cancels the gateway.
    gateway_shutdown: CancellationToken,
    _gateway: JoinHandle<anyhow::Result<()>>,
}

impl std::ops::Deref for TestApp {
    type Target = TestService<PaymentService>;

    fn deref(&self) -> &Self::Target {
        &self.service
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.gateway_shutdown.cancel();
    }
}

/// A nats-server, a SQLite database, a gateway-sim and the service, all fresh, on real time.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// [`spawn_app`] with a manual clock and/or changed settings.
pub async fn spawn_app_with(options: Options) -> TestApp {
    let mut setup = TestService::<PaymentService>::setup(DbBackend::Sqlite);

    // The gateway-sim in process, as `orderflow up` runs it; its ledger sits next to the
    // service's database.
    let gateway_shutdown = CancellationToken::new();
    let gateway_config = gateway_sim::Config {
        port: 0,
        data_dir: setup.dir().to_path_buf(),
        shutdown_timeout_secs: 1,
        admin_token: Some(orderflow_platform::http::Secret::new(TEST_ADMIN_TOKEN)),
        ..gateway_sim::Config::default()
    };
    let listener = gateway_sim::bind(&gateway_config).await.expect("binding gateway-sim");
    let gateway = format!("http://{}", listener.local_addr().unwrap());
    let gateway_task = tokio::spawn(gateway_sim::run(listener, gateway_config, gateway_shutdown.clone()));

    setup.settings.gateway_url = gateway.clone();
    setup.settings.common.shutdown_timeout_secs = 5;
    if let Some(change) = options.settings {
        change(&mut setup.settings);
    }
    let clock: Arc<dyn Clock> = match &options.clock {
        Some(manual) => Arc::new(manual.clone()),
        None => Arc::new(SystemClock),
    };
    let service = PaymentService::with_clock(&setup.settings, clock).expect("valid settings");
    let breaker = service.breaker();
    let test_app = TestApp {
        service: setup.start_with(service).await,
        gateway,
        breaker,
        clock: options.clock,
        gateway_shutdown,
        _gateway: gateway_task,
    };
    test_app.wait_for_gateway().await;
    test_app
}

/// The payments table's row of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    /// `completed` | `failed`.
    pub status: String,
    /// The failure reason.
    pub reason: Option<String>,
    /// The gateway's charge id.
    pub charge_id: Option<String>,
    /// Gateway calls made.
    pub attempts: i64,
}

impl TestApp {
    /// The manual clock (panics when the test did not ask for one).
    pub fn manual_clock(&self) -> &ManualClock {
        self.clock.as_ref().expect("this test runs on real time")
    }

    async fn wait_for_gateway(&self) {
        eventually(WAIT, "gateway-sim to answer", || async {
            let res = self.http.get(format!("{}/health/live", self.gateway)).send().await.ok()?;
            res.status().is_success().then_some(())
        })
        .await
        .unwrap();
    }

    /// `PUT /admin/faults` on the gateway with a partial body.
    pub async fn set_faults(&self, faults: Value) {
        let url = format!("{}/admin/faults", self.gateway);
        let res = self.http.put(url).bearer_auth(TEST_ADMIN_TOKEN).json(&faults).send().await.unwrap();
        assert_eq!(res.status(), 200, "setting faults {faults}: {}", res.text().await.unwrap_or_default());
    }

    /// `GET /admin/charges?order_id=…`: the charges the gateway recorded for the order.
    pub async fn charges(&self, order_id: OrderId) -> Vec<Value> {
        let res = self
            .http
            // A UUID needs no percent-encoding.
            .get(format!("{}/admin/charges?order_id={order_id}", self.gateway))
            .bearer_auth(TEST_ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        body["charges"].as_array().cloned().unwrap_or_default()
    }

    /// A charge made directly at the gateway (not through the service).
    pub async fn charge_directly(&self, idempotency_key: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/charges", self.gateway))
            .header("Idempotency-Key", idempotency_key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Every event the service published about `order_id`.
    pub async fn events_for(&self, order_id: OrderId) -> Vec<Received> {
        self.events_about("PAYMENTS", &order_id.to_string()).await
    }

    /// Waits for the service's (first) payment event about `order_id`.
    pub async fn payment_event(&self, order_id: OrderId) -> Received {
        let events = self.wait_events_about("PAYMENTS", &order_id.to_string(), 1).await;
        events.into_iter().next().unwrap()
    }

    /// The payments row of `order_id`, if the payment was decided.
    pub async fn payment_row(&self, order_id: OrderId) -> Option<PaymentRow> {
        let id = order_id.to_string();
        self.db
            .read::<_, SqlError, _>(move |tx| {
                Box::pin(async move {
                    let row = tx
                        .query_opt(
                            "SELECT status, reason, charge_id, attempts FROM payments WHERE order_id = $1",
                            args![&id],
                        )
                        .await?;
                    row.map(|r| {
                        Ok(PaymentRow {
                            status: r.text(0)?,
                            reason: r.opt_text(1)?,
                            charge_id: r.opt_text(2)?,
                            attempts: r.int(3)?,
                        })
                    })
                    .transpose()
                })
            })
            .await
            .unwrap()
    }

    /// Moves the manual clock forward by `step` between polls of `check`, until `check` returns
    /// `Some`. Returns the value and how far the clock was moved.
    pub async fn advance_until<T, F, Fut>(&self, step: Duration, what: &str, mut check: F) -> (T, Duration)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let clock = self.manual_clock();
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut advanced = Duration::ZERO;
        loop {
            if let Some(value) = check().await {
                return (value, advanced);
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out after {WAIT:?} waiting for {what}");
            clock.advance(step);
            advanced += step;
            // Real time for the service to react to the new "now"; this is polling, not a wait
            // for something not to happen.
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// An `inventory.reserved.v1` envelope from inventory for a new order: two lines, `total_cents`
/// their sum, in USD.
pub fn inventory_reserved(total_cents: i64) -> Envelope<InventoryReserved> {
    let line = |product: &str, quantity: u32, unit_price_cents: i64| ReservedLine {
        product_id: ProductId::parse(product).unwrap(),
        quantity: Quantity::parse(quantity).unwrap(),
        unit_price_cents,
    };
    let data = InventoryReserved {
        order_id: OrderId::new(),
        reservation_id: ReservationId::new(),
        lines: vec![line("sku-001", 1, total_cents - 100), line("sku-002", 2, 50)],
        total_cents,
        currency: Currency::usd(),
    };
    Envelope::new("orderflow/inventory-service", CorrelationId::generate(), data)
        .with_traceparent(Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned()))
}

/// The JSON body of a gateway charge.
pub fn charge_body(order_id: OrderId, amount_cents: i64) -> Value {
    json!({"order_id": order_id.to_string(), "amount_cents": amount_cents, "currency": "USD"})
}
