//! An order that cannot be charged within `max_wait` fails with `payment_unavailable`, so the
//! saga compensates it. The service runs on a manual clock: the default five minutes pass in a
//! second of real time.

use std::time::Duration;

use orderflow_resilience::ManualClock;
use payment_service::Settings;
use serde_json::json;

use crate::helpers::{Options, inventory_reserved, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_not_charged_within_max_wait_fails_as_payment_unavailable() {
    let app = spawn_app_with(Options { clock: Some(ManualClock::new()), ..Options::default() }).await;
    let max_wait = Duration::from_secs(Settings::default().max_wait_secs);
    app.set_faults(json!({"outage": true})).await;
    let reserved = inventory_reserved(2000);
    let order_id = reserved.data.order_id;

    app.publish(&reserved).await;

    // The order waits through backed-off retries while the clock moves on.
    let step = Duration::from_secs(10);
    let (event, advanced) = app
        .advance_until(step, "the payment to fail", || async {
            app.events_for(order_id).await.into_iter().next()
        })
        .await;
    assert_eq!(event.subject, "payments.failed.v1");
    assert_eq!(event.data()["reason"], "payment_unavailable");
    assert!(event.data()["detail"].as_str().unwrap().contains("300s"), "{event:?}");
    // Not before the budget: the event appeared only once the clock had passed `max_wait` (less
    // the milliseconds the reservation aged before the service saw it).
    assert!(advanced >= max_wait, "failed after {advanced:?} of {max_wait:?}");
    let row = app.payment_row(order_id).await.unwrap();
    assert_eq!((row.status.as_str(), row.reason.as_deref()), ("failed", Some("payment_unavailable")));
    assert!(row.attempts >= 2, "the gateway was retried while the order waited: {row:?}");
    assert!(app.charges(order_id).await.is_empty());
}
