//! The circuit breaker around the gateway: repeated failures open it, the consumers stop
//! pulling work while it is open, and a successful probe after the open period closes it again.
//! The service runs on a manual clock, so the open period passes when the test says so.

use std::time::Duration;

use orderflow_resilience::{BreakerState, ManualClock};
use serde_json::json;

use crate::helpers::{Options, inventory_reserved, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_gateway_failures_open_the_breaker_pause_consumption_and_a_probe_resumes_it() {
    let app = spawn_app_with(Options {
        clock: Some(ManualClock::new()),
        settings: Some(|s| {
            s.breaker_min_calls = 3;
            s.breaker_failure_rate = 0.5;
            s.breaker_open_ms = 2_000;
        }),
    })
    .await;
    app.set_faults(json!({"outage": true})).await;
    let first = inventory_reserved(1500);
    app.publish(&first).await;

    // Each step lets the next backed-off retry go out and fail with 503.
    app.advance_until(Duration::from_millis(100), "the breaker to open", || async {
        (app.breaker.state() == BreakerState::Open).then_some(())
    })
    .await;
    // Paused: once the pull requests made before the breaker opened expire, no consumer of
    // events asks the server for more work (the max-deliveries consumer, which copies to the DLQ
    // what the server gave up on, needs no gateway and keeps pulling).
    orderflow_test_support::eventually(crate::helpers::WAIT, "the consumers to stop pulling", || async {
        for consumer in app.consumers().iter().filter(|c| c.stream != "ADVISORIES") {
            if app.consumer_info(&consumer.stream, &consumer.durable).await.num_waiting > 0 {
                return None;
            }
        }
        Some(())
    })
    .await
    .unwrap();
    let second = inventory_reserved(1600);
    app.publish(&second).await;
    // The standard lane's consumer.
    let standard = &app.consumers()[0];
    let info = app.consumer_info(&standard.stream, &standard.durable).await;
    assert_eq!((info.num_pending, info.num_ack_pending, info.num_waiting), (1, 1, 0), "{info:?}");
    assert_eq!(app.breaker.state(), BreakerState::Open, "the clock has not moved");

    app.set_faults(json!({"outage": false})).await;

    // Past the open period the breaker lets a probe through; it succeeds and closes it.
    let ((), advanced) = app
        .advance_until(Duration::from_millis(250), "both orders to be charged", || async {
            let first_done = !app.events_for(first.data.order_id).await.is_empty();
            let second_done = !app.events_for(second.data.order_id).await.is_empty();
            (first_done && second_done).then_some(())
        })
        .await;
    assert!(advanced >= Duration::from_secs(2), "charged only after the open period: {advanced:?}");
    for reserved in [&first, &second] {
        let order_id = reserved.data.order_id;
        assert_eq!(app.payment_event(order_id).await.subject, "payments.completed.v1");
        assert_eq!(app.charges(order_id).await.len(), 1);
    }
    // The second order waited in the stream and was tried only once the gateway was back.
    assert_eq!(app.payment_row(second.data.order_id).await.unwrap().attempts, 1);
    let snapshot = app.breaker.snapshot();
    assert_eq!((snapshot.state, snapshot.times_opened), (BreakerState::Closed, 1), "{snapshot:?}");
}
