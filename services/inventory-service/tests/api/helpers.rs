//! `spawn_app`: the inventory service on the shared harness ([`TestService`], which has the HTTP
//! client, JetStream, the database, publishing, streams, dead letters and `wait_until_quiet`),
//! and inventory's own calls: products and stock, and its events about an order.

pub use orderflow_test_support::service::{Received, WAIT};

use inventory_service::InventoryService;
use orderflow_events::{
    CorrelationId, Currency, CustomerId, Envelope, OrderCreated, OrderId, OrderItem, Priority, ProductId,
    Quantity, v2,
};
use orderflow_test_support::DbBackend;
use orderflow_test_support::service::{TEST_ADMIN_TOKEN, TestService};
use serde_json::{Value, json};

/// The running inventory service.
pub struct TestApp(TestService<InventoryService>);

impl std::ops::Deref for TestApp {
    type Target = TestService<InventoryService>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Starts a nats-server, a fresh database of `backend` and the service on a free port.
pub async fn spawn_app(backend: DbBackend) -> TestApp {
    TestApp(TestService::spawn(backend).await)
}

/// [`spawn_app`] with the settings changed by `configure`.
pub async fn spawn_app_with(
    backend: DbBackend,
    configure: impl FnOnce(&mut inventory_service::Settings),
) -> TestApp {
    TestApp(TestService::spawn_with(backend, configure).await)
}

impl TestApp {
    /// `PUT /inventory/{id}` with a JSON body and the admin token.
    pub async fn put_product(&self, id: &str, body: Value) -> reqwest::Response {
        self.http
            .put(self.url(&format!("/inventory/{id}")))
            .bearer_auth(TEST_ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a USD product and asserts 200.
    pub async fn stock(&self, id: &str, available: i64, unit_price_cents: i64) {
        let res =
            self.put_product(id, json!({"available": available, "unit_price_cents": unit_price_cents})).await;
        assert_eq!(res.status(), 200, "stocking {id}: {}", res.text().await.unwrap_or_default());
    }

    /// `GET /inventory/{id}`, asserting 200.
    pub async fn product(&self, id: &str) -> Value {
        let res = self.get(&format!("/inventory/{id}")).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// `(available, reserved, committed)` of a product.
    pub async fn stock_of(&self, id: &str) -> (i64, i64, i64) {
        let p = self.product(id).await;
        let n = |k: &str| p[k].as_i64().unwrap();
        (n("available"), n("reserved"), n("committed"))
    }

    /// Every event the service published about `order_id`.
    pub async fn events_for(&self, order_id: OrderId) -> Vec<Received> {
        self.events_about("INVENTORY", &order_id.to_string()).await
    }

    /// Waits until the service has published at least `n` events about `order_id`.
    pub async fn wait_for_events(&self, order_id: OrderId, n: usize) -> Vec<Received> {
        self.wait_events_about("INVENTORY", &order_id.to_string(), n).await
    }
}

/// An `orders.created` envelope for `items` (`(product id, quantity)`).
pub fn order_created(items: &[(&str, u32)], priority: Priority) -> Envelope<OrderCreated> {
    let items = items
        .iter()
        .map(|&(p, q)| OrderItem {
            product_id: ProductId::parse(p).unwrap(),
            quantity: Quantity::parse(q).unwrap(),
        })
        .collect();
    let data =
        OrderCreated::new(OrderId::new(), CustomerId::parse("customer-1").unwrap(), items, priority).unwrap();
    Envelope::new("orderflow/order-service", CorrelationId::generate(), data)
        .with_traceparent(Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned()))
}

/// An `orders.created.v2` envelope for `items`, paid in `currency` (`None`: the products').
pub fn order_created_in(items: &[(&str, u32)], currency: Option<&str>) -> Envelope<v2::OrderCreated> {
    let order = order_created(items, Priority::Standard);
    let currency = currency.map(|c| Currency::parse(c).unwrap());
    order.map_data(|d| v2::OrderCreated { currency, ..v2::OrderCreated::from(d) })
}
