//! The live dashboard in a real browser: headless Chromium driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`, which `cargo xtask test` installs). While `orderflow load`
//! drives orders through a running system the page's counters move; once it is done they and
//! the flow equal the generator's counts; a hostile product id shows as text, not markup; the
//! page's outage button is refused without the admin token, and with it starts a gateway outage
//! that shows as orders in flight, which confirm once the button ends it. A screenshot is saved as `target/artifacts/dashboard.png`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use orderflow::load::{LoadConfig, Schedule, SpawnedSystem, Target, Until, run_load};
use orderflow_test_support::eventually;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// `env` if set, else `default`; it must exist.
fn binary(env: &str, default: &str) -> PathBuf {
    let bin = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(bin.exists(), "no {} (cargo xtask test installs it; or set {env})", bin.display());
    bin
}

/// A W3C WebDriver session on a chromedriver of its own: the handful of commands the test needs.
struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
}

impl Browser {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(binary("CHROMEDRIVER_BIN", "/usr/bin/chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let http = orderflow_platform::tls::http_client();
        let base = format!("http://127.0.0.1:{port}");
        eventually(Duration::from_secs(30), "chromedriver ready", || async {
            let status: Value = http.get(format!("{base}/status")).send().await.ok()?.json().await.ok()?;
            (status["value"]["ready"] == true).then_some(())
        })
        .await
        .unwrap();
        let chromium = binary("CHROMIUM_BIN", "/usr/bin/chromium");
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--hide-scrollbars", "--window-size=1400,1250"],
        }}}});
        let res: Value =
            http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session = res["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {res}"));
        Self { http, session: format!("{base}/session/{session}"), driver }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res: Value = req.send().await.unwrap().json().await.unwrap();
        res["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    /// The element's reference; `None` while it is not on the page (yet).
    async fn element(&self, css: &str) -> Option<String> {
        let found = self
            .command(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css})))
            .await;
        if found.get("error").is_some() {
            return None;
        }
        // The reference is the one value of the object, whatever its W3C key.
        found.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).map(str::to_owned)
    }

    /// The element's text; `None` while it is not on the page, or was just redrawn.
    async fn text(&self, css: &str) -> Option<String> {
        let id = self.element(css).await?;
        let text = self.command(reqwest::Method::GET, &format!("/element/{id}/text"), None).await;
        text.as_str().map(str::to_owned)
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await.unwrap_or_else(|| panic!("no {css} on the page"));
        self.command(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({"text": text})))
            .await;
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await.unwrap_or_else(|| panic!("no {css} on the page"));
        self.command(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await;
    }

    async fn script(&self, script: &str) -> Value {
        self.command(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []})))
            .await
    }

    async fn screenshot(&self, path: &std::path::Path) {
        let png = self.command(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// The page's `[accepted, confirmed, cancelled, in flight]`, read in one script (the page
    /// redraws between separate reads), once the flow's `created` agrees with `accepted` (both
    /// come from the same summary).
    async fn counters(&self) -> Option<[u64; 4]> {
        let read = self
            .script(
                "const n = (s) => { const e = document.querySelector(s); \
                 return e ? Number(e.textContent.replaceAll(',', '')) : NaN; }; \
                 return ['#k-accepted', '#k-confirmed', '#k-cancelled', '#k-inflight', '[data-step=created]'].map(n);",
            )
            .await;
        let values: Vec<u64> = read.as_array()?.iter().map(Value::as_u64).collect::<Option<_>>()?;
        let [accepted, confirmed, cancelled, in_flight, created] = values[..] else { return None };
        (created == accepted).then_some([accepted, confirmed, cancelled, in_flight])
    }

    async fn counters_when(&self, what: &str, ok: impl Fn(&[u64; 4]) -> bool) -> [u64; 4] {
        eventually(Duration::from_secs(60), what, || async { self.counters().await.filter(|c| ok(c)) })
            .await
            .unwrap()
    }

    async fn quit(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_the_load_and_shows_a_gateway_outage_started_from_its_button() {
    orderflow_telemetry::init_for_tests();
    let mut spawned = SpawnedSystem::start(None, None, &[]).await.unwrap();
    let browser = Browser::start().await;
    browser.goto(&format!("{}/", spawned.system.analytics_url)).await;
    eventually(Duration::from_secs(30), "the page live", || async {
        (browser.text("#status").await? == "live").then_some(())
    })
    .await
    .unwrap();

    // While the load runs, the counters move.
    let mut config = LoadConfig::new(
        Target::Running(spawned.endpoints()),
        Schedule::Open { rate: 100.0 },
        Until::Count(600),
    );
    config.analytics_url = Some(spawned.system.analytics_url.clone());
    config.progress = false;
    let never = CancellationToken::new();
    let (report, _) = tokio::join!(
        run_load(&config, &never),
        browser.counters_when("some orders on the page while the load runs", |c| c[0] > 0 && c[0] < 600),
    );
    let report = report.unwrap();
    assert!(report.passed(), "{}", report.render());
    assert!(report.analytics.as_ref().is_some_and(|a| a.equal), "{}", report.render());
    let cancelled: u64 = report.cancelled.values().sum();
    assert!(cancelled > 0, "the scarce demo products sell out: {}", report.render());

    // Once it is done, the page shows exactly what the generator counted.
    let shown = browser
        .counters_when("the load's orders on the page", |c| c[0] == report.accepted && c[3] == 0)
        .await;
    assert_eq!(shown, [report.accepted, report.confirmed, cancelled, 0]);
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("dashboard.png");
    browser.screenshot(&png).await;
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000, "a screenshot with something on it");
    eprintln!("dashboard screenshot: {}", png.display());

    // A product id made of markup is shown as text and runs nothing.
    let http = orderflow_platform::tls::http_client();
    let hostile = "<img src=x onerror=window.pwned=1>";
    let order = |product: &str, quantity: u32| json!({"customer_id": "c-1", "items": [{"product_id": product, "quantity": quantity}]});
    let orders = format!("{}/orders", spawned.system.order_url);
    let res = http.post(&orders).json(&order(hostile, 1_000_000)).send().await.unwrap();
    assert_eq!(res.status(), 202);
    eventually(Duration::from_secs(30), "the hostile product on top", || async {
        (browser.text("#products tr:first-child td:first-child").await? == hostile).then_some(())
    })
    .await
    .unwrap();
    let injected = browser
        .script("return [document.querySelectorAll('#products img').length, window.pwned === undefined]")
        .await;
    assert_eq!(injected, json!([0, true]));
    let before =
        browser.counters_when("the hostile order ended", |c| c[3] == 0 && c[0] == report.accepted + 1).await;

    // Without the admin token the page's button is refused...
    browser.click("#outage-on").await;
    eventually(Duration::from_secs(30), "the refusal on the page", || async {
        browser.text("#gateway-state").await?.contains("Authorization").then_some(())
    })
    .await
    .unwrap();
    // ...with it, it starts an outage: orders wait, in flight...
    browser.type_into("#token", &spawned.system.admin_token).await;
    browser.click("#outage-on").await;
    eventually(Duration::from_secs(30), "the outage on the page", || async {
        browser.text("#gateway-state").await?.contains("OUTAGE").then_some(())
    })
    .await
    .unwrap();
    for _ in 0..3 {
        assert_eq!(http.post(&orders).json(&order("sku-001", 1)).send().await.unwrap().status(), 202);
    }
    browser.counters_when("three orders in flight during the outage", |c| c[3] == 3).await;

    // ...and confirm once the button ends it.
    browser.click("#outage-off").await;
    let after =
        browser.counters_when("the outage's orders confirmed", |c| c[3] == 0 && c[0] == before[0] + 3).await;
    assert_eq!(after, [before[0] + 3, before[1] + 3, before[2], 0]);
    browser.quit().await;
    spawned.stop().await.unwrap();
}
