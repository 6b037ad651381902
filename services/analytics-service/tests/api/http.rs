//! The summary stream, the page and the OpenAPI document.

use std::time::Duration;

use orderflow_events::OrderId;
use orderflow_test_support::DbBackend;

use crate::helpers::*;

/// Reads server-sent events from `res` until one `summary` event is complete: `(id, data)`.
async fn next_event(body: &mut reqwest::Response, buf: &mut String) -> (u64, serde_json::Value) {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let field = |name: &str| {
                block.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim_start().to_owned()))
            };
            if field("event:").as_deref() == Some("summary") {
                let id = field("id:").unwrap().parse().unwrap();
                return (id, serde_json::from_str(&field("data:").unwrap()).unwrap());
            }
            continue;
        }
        let chunk =
            tokio::time::timeout(Duration::from_secs(10), body.chunk()).await.unwrap().unwrap().unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn the_stream_sends_the_summary_every_second_and_resumes_after_last_event_id() {
    let app = spawn_app(DbBackend::Sqlite).await;
    let res = app.http.get(app.url("/analytics/stream")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res;
    let mut buf = String::new();
    let (first, summary) = next_event(&mut body, &mut buf).await;
    assert_eq!(summary["totals"]["accepted"], 0);

    app.publish(&created(OrderId::new(), &[("sku-001", 1)], minute(0, 0))).await;
    let mut last = first;
    let counted = loop {
        let (id, summary) = next_event(&mut body, &mut buf).await;
        assert!(id > last, "ids grow: {id} after {last}");
        last = id;
        if summary["totals"]["accepted"] == 1 {
            break id;
        }
    };
    drop(body);

    let mut res = app
        .http
        .get(app.url("/analytics/stream"))
        .header("Last-Event-ID", counted.to_string())
        .send()
        .await
        .unwrap();
    let (id, summary) = next_event(&mut res, &mut String::new()).await;
    assert!(id > counted, "a reconnect resumes after the last summary seen: {id} vs {counted}");
    assert_eq!(summary["totals"]["accepted"], 1);
}

#[tokio::test]
async fn watchers_beyond_the_limit_get_503_and_the_rest_keep_their_stream() {
    let app = spawn_with(DbBackend::Sqlite, |s| s.max_watchers = 2).await;
    let url = app.url("/analytics/stream");
    let first = app.http.get(&url).send().await.unwrap();
    let second = app.http.get(&url).send().await.unwrap();
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));

    let (mut first, mut second) = (first, second);
    next_event(&mut first, &mut String::new()).await;
    let third = app.http.get(&url).send().await.unwrap();
    assert_eq!(third.status(), 503);
    assert_eq!(third.headers()["retry-after"], "5");
    assert_eq!(third.headers()["content-type"], "application/problem+json");

    drop(first);
    let mut again = orderflow_test_support::eventually(Duration::from_secs(10), "a freed place", || async {
        let res = app.http.get(&url).send().await.unwrap();
        (res.status() == 200).then_some(res)
    })
    .await
    .unwrap();
    next_event(&mut again, &mut String::new()).await;
    next_event(&mut second, &mut String::new()).await;
}

#[tokio::test]
async fn the_page_is_self_contained_and_the_openapi_document_names_every_route() {
    let app = spawn_app(DbBackend::Sqlite).await;
    let res = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self';"), "{csp}");
    let page = res.text().await.unwrap();
    assert!(page.contains(r#"<script src="/dashboard.js"></script>"#));
    assert!(!page.contains("<script>"), "no inline script: the policy would refuse it");
    let script = app.get("/dashboard.js").await;
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
    let script = script.text().await.unwrap();
    assert!(script.contains("/analytics/stream"));
    for text in [&page, &script] {
        for external in ["http://", "https://", "//cdn", "<link", "import("] {
            assert!(!text.contains(external), "the page loads nothing from elsewhere: found {external}");
        }
    }

    let doc: serde_json::Value =
        app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    for path in ["/", "/analytics/summary", "/analytics/stream", "/analytics/gateway/faults"] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
}

#[tokio::test]
async fn the_gateway_control_answers_404_without_a_gateway() {
    let app = spawn_app(DbBackend::Sqlite).await;
    let res = app.http.get(app.url("/analytics/gateway/faults")).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn beyond_max_concurrent_requests_a_request_is_shed_with_503_and_health_still_answers() {
    // A "gateway" that accepts and never answers keeps the first request running.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("http://{}", hang.local_addr().unwrap());
    let (accepted, mut accepted_rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let (socket, _) = hang.accept().await.unwrap();
        accepted.send(()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(socket);
    });
    let app = spawn_with(DbBackend::Sqlite, |s| {
        s.common.max_concurrent_requests = 1;
        s.gateway_url = Some(gateway);
    })
    .await;
    let (http, slow_url) = (app.http.clone(), app.url("/analytics/gateway/faults"));
    let slow = tokio::spawn(async move { http.get(slow_url).send().await });
    accepted_rx.recv().await.unwrap();

    let shed = app.get("/analytics/summary").await;
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_eq!(app.get("/health/live").await.status(), 200, "health is never shed");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("orderflow_http_requests_shed_total{service=\"analytics-service\"}")),
        "{metrics}"
    );
    slow.abort();
}

#[tokio::test]
async fn an_unknown_http_method_does_not_make_a_metric_series_of_its_own() {
    let app = spawn_app(DbBackend::Sqlite).await;
    let method = reqwest::Method::from_bytes(b"BREW").unwrap();
    let res = app.http.request(method, app.url("/analytics/summary")).send().await.unwrap();
    assert_eq!(res.status(), 405);

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(!metrics.contains("BREW"), "{metrics}");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
}
