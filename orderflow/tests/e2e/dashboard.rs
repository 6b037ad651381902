//! The live dashboard in a real browser: headless Chromium (Debian's `chromium`, which
//! `cargo xtask test` installs) loads the page of a running system while `orderflow load`
//! drives orders through it; the counters and the flow on the page must equal the load
//! generator's counts, and a gateway outage started through the page's control must show as
//! orders in flight, then clear. A screenshot is saved as `target/artifacts/dashboard.png`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use orderflow::load::{LoadConfig, Schedule, SpawnedSystem, Target, Until, run_load};
use orderflow_test_support::eventually;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// `CHROMIUM_BIN`, else Debian's `/usr/bin/chromium`.
fn chromium() -> PathBuf {
    let bin =
        std::env::var_os("CHROMIUM_BIN").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        bin.exists(),
        "no chromium at {} (cargo xtask test installs it; or set CHROMIUM_BIN)",
        bin.display()
    );
    bin
}

/// Loads `url` for three seconds (the page's stream sends a summary each second) and returns
/// the page as rendered, or with `screenshot`, writes a PNG of it.
async fn browse(url: &str, screenshot: Option<&std::path::Path>) -> String {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1400,1250",
        "--timeout=3000",
    ]);
    match screenshot {
        Some(path) => cmd.arg(format!("--screenshot={}", path.display())),
        None => cmd.arg("--dump-dom"),
    };
    cmd.arg(url);
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The text of the element with `attr` (`id="k-accepted"`, `data-step="created"`).
fn text_of(dom: &str, attr: &str) -> String {
    let at = dom.find(attr).unwrap_or_else(|| panic!("{attr} is not on the page"));
    let rest = &dom[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap();
    rest[start..start + end].replace(',', "")
}

/// The page's counters once they show `accepted` orders.
async fn counters_when(url: &str, what: &str, ok: impl Fn(&[u64; 4]) -> bool) -> [u64; 4] {
    eventually(Duration::from_secs(60), what, || async {
        let dom = browse(url, None).await;
        let n = |id: &str| text_of(&dom, &format!("id=\"{id}\"")).parse::<u64>().ok();
        let counters = [n("k-accepted")?, n("k-confirmed")?, n("k-cancelled")?, n("k-inflight")?];
        let created = text_of(&dom, "data-step=\"created\"").parse::<u64>().ok()?;
        (created == counters[0] && ok(&counters)).then_some(counters)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_what_the_load_generator_counted_and_a_gateway_outage_as_it_happens() {
    orderflow_telemetry::init_for_tests();
    let mut spawned = SpawnedSystem::start(None, None, &[]).await.unwrap();
    let page = format!("{}/", spawned.system.analytics_url);
    let mut config = LoadConfig::new(
        Target::Running(spawned.endpoints()),
        Schedule::Open { rate: 150.0 },
        Until::Count(300),
    );
    config.analytics_url = Some(spawned.system.analytics_url.clone());
    config.progress = false;

    let report = run_load(&config, &CancellationToken::new()).await.unwrap();
    assert!(report.passed(), "{}", report.render());
    assert!(report.analytics.as_ref().is_some_and(|a| a.equal), "{}", report.render());
    let cancelled: u64 = report.cancelled.values().sum();
    assert!(cancelled > 0, "the scarce demo products sell out: {}", report.render());

    let shown = counters_when(&page, "the load's orders on the page", |c| c[0] == report.accepted).await;
    assert_eq!(shown, [report.accepted, report.confirmed, cancelled, 0]);
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("dashboard.png");
    browse(&page, Some(&png)).await;
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000, "a screenshot with something on it");
    eprintln!("dashboard screenshot: {}", png.display());

    // The page's outage control, through the analytics service to the gateway's admin API.
    let http = reqwest::Client::new();
    let faults = format!("{}/analytics/gateway/faults", spawned.system.analytics_url);
    let res = http.put(&faults).json(&json!({"outage": true})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["outage"], true);
    for _ in 0..3 {
        let body = json!({"customer_id": "c-1", "items": [{"product_id": "sku-001", "quantity": 1}]});
        let res = http.post(format!("{}/orders", spawned.system.order_url)).json(&body).send().await.unwrap();
        assert_eq!(res.status(), 202);
    }
    counters_when(&page, "three orders in flight during the outage", |c| c[3] == 3).await;

    let res = http.put(&faults).json(&json!({"outage": false})).send().await.unwrap();
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["outage"], false);
    let after = counters_when(&page, "the outage's orders confirmed", |c| c[3] == 0).await;
    assert_eq!(after, [report.accepted + 3, report.confirmed + 3, cancelled, 0]);
    spawned.stop().await.unwrap();
}
