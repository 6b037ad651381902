//! `GET /metrics`: the process's Prometheus registry (shared with the other services when they
//! run in one process). The simulator's own figures are read from its state at scrape time, so
//! no handler carries metric code.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use orderflow_telemetry::metrics::names;

use crate::state::AppState;

const SERVICE: &str = "gateway-sim";

/// Charges by status, the faults in force, and everything else the process records.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let handle = orderflow_telemetry::metrics::install();
    // A ledger that cannot be read leaves the counters at their last values.
    if let Ok((succeeded, declined)) = state.ledger().count_by_status().await {
        metrics::counter!(names::GATEWAY_CHARGES, "service" => SERVICE, "status" => "succeeded")
            .absolute(succeeded);
        metrics::counter!(names::GATEWAY_CHARGES, "service" => SERVICE, "status" => "declined")
            .absolute(declined);
    }
    let faults = state.faults();
    let gauges = [
        ("orderflow_gateway_fault_latency_ms", faults.latency_ms.millis() as f64),
        ("orderflow_gateway_fault_decline_rate", faults.decline_rate.get()),
        ("orderflow_gateway_fault_error_rate", faults.error_rate.get()),
        ("orderflow_gateway_fault_outage", f64::from(u8::from(faults.outage))),
    ];
    for (name, value) in gauges {
        metrics::gauge!(name, "service" => SERVICE).set(value);
    }
    let mut response = handle.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}
