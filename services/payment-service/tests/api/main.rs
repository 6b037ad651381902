//! payment-service end to end: the real service in process, a real nats-server, a real SQLite
//! file and an in-process gateway-sim whose admin API injects declines, errors, latency and
//! outages. Tests that need time to pass (the breaker's open period, `max_wait`) run the service
//! on a `ManualClock` and move it forward instead of sleeping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod breaker;
mod charges;
mod helpers;
mod max_wait;
mod retries;
mod secrets;
