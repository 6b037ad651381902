use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use orderflow::invariants::{self, Report, Targets};
use orderflow::system::{System, Tune, UpOptions};
use orderflow_test_support::{DbBackend, TestDb, TestNats, eventually};
use serde_json::{Value, json};

pub const WAIT: Duration = Duration::from_secs(60);

pub struct TestSystem {
    pub system: System,
    pub http: reqwest::Client,
    pub nats: TestNats,
    pub initial_stock: BTreeMap<String, i64>,
    accepted: Mutex<Vec<String>>,
    _db: TestDb,
}

pub async fn spawn_system(backend: DbBackend, tune: Tune) -> TestSystem {
    orderflow_telemetry::init_for_tests();
    let nats = TestNats::start().unwrap();
    let db = TestDb::new(backend).unwrap();
    let (database_url, schema) = db.for_service("x");
    let postgres = backend == DbBackend::Postgres;
    let tune =
        Tune { db_schema_suffix: postgres.then(|| format!("_{}", schema.trim_start_matches("x_"))), ..tune };
    let system = System::start(UpOptions {
        database_url: postgres.then_some(database_url),
        tune: Some(tune),
        ..UpOptions::ephemeral(db.dir().to_path_buf(), nats.url())
    })
    .await
    .unwrap();
    let inventory = system.databases.iter().find(|d| d.service == "inventory").unwrap().clone();
    let initial_stock = invariants::stock_totals(&inventory).await.unwrap();
    TestSystem {
        system,
        http: orderflow_platform::tls::http_client(),
        nats,
        initial_stock,
        accepted: Mutex::new(Vec::new()),
        _db: db,
    }
}

impl TestSystem {
    pub fn targets(&self) -> Targets {
        Targets {
            databases: self.system.databases.clone(),
            gateway_url: self.system.gateway_url.clone(),
            admin_token: self.system.admin_token.clone(),
            nats_url: self.system.nats_url.clone(),
            nats_creds: self.system.admin_creds(),
            nats_tls: Default::default(),
        }
    }

    /// Places an order and remembers it as accepted.
    pub async fn place(&self, items: Value) -> String {
        let res = self.post(json!({"customer_id": "c-1", "items": items}), None).await;
        assert_eq!(res.status(), 202);
        let body: Value = res.json().await.unwrap();
        let id = body["order_id"].as_str().unwrap().to_owned();
        self.accepted.lock().unwrap().push(id.clone());
        id
    }

    /// Places an order in the caller's trace (`traceparent`) and remembers it as accepted.
    pub async fn place_in_trace(&self, items: Value, traceparent: &str) -> String {
        let res = self
            .http
            .post(format!("{}/orders", self.system.order_url))
            .header("traceparent", traceparent)
            .json(&json!({"customer_id": "c-1", "items": items}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        let body: Value = res.json().await.unwrap();
        let id = body["order_id"].as_str().unwrap().to_owned();
        self.accepted.lock().unwrap().push(id.clone());
        id
    }

    pub async fn post(&self, body: Value, key: Option<&str>) -> reqwest::Response {
        let mut req = self.http.post(format!("{}/orders", self.system.order_url)).json(&body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send().await.unwrap()
    }

    pub async fn order(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/orders/{id}", self.system.order_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until the order is confirmed or cancelled, and then until the system is quiet: the
    /// order service may finish an order a moment before inventory commits or releases its
    /// stock, and a test that reads stock next must see the saga's end, not a step of it.
    pub async fn terminal(&self, id: &str) -> Value {
        let order = eventually(WAIT, "a terminal order", || async {
            let o = self.order(id).await;
            (o["status"] == "confirmed" || o["status"] == "cancelled").then_some(o)
        })
        .await
        .unwrap();
        invariants::wait_until_quiet(&self.targets(), WAIT).await.unwrap();
        order
    }

    pub async fn product(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/inventory/{id}", self.system.inventory_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn put_product(&mut self, id: &str, available: i64, unit_price_cents: i64) {
        self.put_product_in(id, available, unit_price_cents, "USD").await;
    }

    pub async fn put_product_in(&mut self, id: &str, available: i64, unit_price_cents: i64, currency: &str) {
        let res = self
            .http
            .put(format!("{}/inventory/{id}", self.system.inventory_url))
            .bearer_auth(&self.system.admin_token)
            .json(
                &json!({"available": available, "unit_price_cents": unit_price_cents, "currency": currency}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let p: Value = res.json().await.unwrap();
        let total = p["available"].as_i64().unwrap()
            + p["reserved"].as_i64().unwrap()
            + p["committed"].as_i64().unwrap();
        self.initial_stock.insert(id.to_owned(), total);
    }

    pub async fn set_faults(&self, faults: Value) {
        let res = self
            .http
            .put(format!("{}/admin/faults", self.system.gateway_url))
            .bearer_auth(&self.system.admin_token)
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }

    pub async fn charges(&self, order_id: &str) -> Vec<Value> {
        let body: Value = self
            .http
            .get(format!("{}/admin/charges?order_id={order_id}", self.system.gateway_url))
            .bearer_auth(&self.system.admin_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["charges"].as_array().unwrap().clone()
    }

    pub async fn invariants(&self) -> Report {
        invariants::wait_until_quiet(&self.targets(), WAIT).await.unwrap();
        let accepted = self.accepted.lock().unwrap().clone();
        invariants::check(&self.targets(), &accepted, Some(&self.initial_stock)).await.unwrap()
    }

    /// Waits until `GET {base_url}/health/ready` answers 200: the service's consumers are running.
    pub async fn wait_until_ready(&self, base_url: &str) {
        eventually(WAIT, &format!("{base_url} ready"), || async {
            let res = self.http.get(format!("{base_url}/health/ready")).send().await.ok()?;
            (res.status() == 200).then_some(())
        })
        .await
        .unwrap();
    }

    /// The JetStream view of one durable consumer.
    pub async fn consumer_info(&self, stream: &str, durable: &str) -> async_nats::jetstream::consumer::Info {
        let js = self.nats.jetstream().await.unwrap();
        js.get_stream(stream).await.unwrap().consumer_info(durable).await.unwrap()
    }

    /// The `/metrics` text of the service at `base_url`.
    pub async fn metrics(&self, base_url: &str) -> String {
        self.http.get(format!("{base_url}/metrics")).send().await.unwrap().text().await.unwrap()
    }

    /// Checks every invariant, expects no dead letters, and stops the system cleanly.
    pub async fn finish(self) {
        self.finish_with_dlq(0).await;
    }

    /// Like [`finish`], allowing `dead_letters` DLQ entries.
    pub async fn finish_with_dlq(mut self, dead_letters: usize) {
        let report = self.invariants().await;
        assert!(report.is_ok(), "invariants broken: {:#?}", report.violations);
        assert_eq!(report.dlq.values().sum::<usize>(), dead_letters, "dead letters: {:?}", report.dlq);
        tokio::time::timeout(Duration::from_secs(30), self.system.stop())
            .await
            .expect("stopped in time")
            .unwrap();
    }
}

/// The summed value of every sample of `name` whose labels include all of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}
