//! The optional per-client rate of `POST /orders`: a client over it gets `429` problem+json with
//! `Retry-After` and no order; other clients and reads are not held back by it.

use order_service::OrderService;
use orderflow_platform::http::RateLimitSettings;
use orderflow_test_support::DbBackend;
use orderflow_test_support::service::TestService;

use crate::helpers::order_body;

/// Ten orders in a row from one client, at 1 per second with bursts of 3: the first three are
/// taken, and at least one of the rest is refused (however slowly the machine sends them).
#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after_and_others_are_served() {
    let app = TestService::<OrderService>::spawn_with(DbBackend::Sqlite, |s| {
        s.rate_limit = RateLimitSettings { per_second: 1, burst: 3, trust_forwarded_for: true };
    })
    .await;
    let post = |client: &'static str| {
        app.http.post(app.url("/orders")).header("x-forwarded-for", client).json(&order_body()).send()
    };

    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..10 {
        let res = post("203.0.113.7").await.unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 429 && refused.is_none() {
            refused = Some(res);
        }
    }
    assert_eq!(&statuses[..3], [202, 202, 202], "{statuses:?}");
    let refused = refused.unwrap_or_else(|| panic!("no request was refused: {statuses:?}"));
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert!(problem["type"].as_str().unwrap().ends_with("/too-many-requests"), "{problem}");
    assert_eq!(problem["status"], 429);

    // Another client has a bucket of its own; reads are not limited.
    assert_eq!(post("198.51.100.20").await.unwrap().status(), 202);
    assert_eq!(app.get("/openapi.json").await.status(), 200);
    let accepted = statuses.iter().filter(|s| **s == 202).count() + 1;
    assert_eq!(app.rows_in("orders").await, accepted as i64);
}

/// Off by default: the same ten orders are all taken.
#[tokio::test]
async fn without_a_rate_limit_every_order_is_taken() {
    let app = TestService::<OrderService>::spawn(DbBackend::Sqlite).await;
    for _ in 0..10 {
        let res = app.http.post(app.url("/orders")).json(&order_body()).send().await.unwrap();
        assert_eq!(res.status(), 202);
    }
}
