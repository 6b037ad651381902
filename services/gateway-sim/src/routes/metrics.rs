//! `GET /metrics`: a minimal Prometheus text exposition, derived from the state at scrape time
//! so that no handler carries metric code. Meant to be replaced by the shared metrics.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

const SERVICE: &str = "gateway-sim";

/// Charges by status and the faults in force.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = String::new();
    let (succeeded, declined) = state.count_by_status();
    let faults = state.faults();
    family(&mut body, "orderflow_gateway_charges_total", "counter", "Charges recorded by the simulator.");
    sample(&mut body, "orderflow_gateway_charges_total", &[("status", "succeeded")], succeeded as f64);
    sample(&mut body, "orderflow_gateway_charges_total", &[("status", "declined")], declined as f64);
    let gauges = [
        (
            "orderflow_gateway_fault_latency_ms",
            "Injected latency in milliseconds.",
            faults.latency_ms.millis() as f64,
        ),
        ("orderflow_gateway_fault_decline_rate", "Share of new charges declined.", faults.decline_rate.get()),
        ("orderflow_gateway_fault_error_rate", "Share of new charges answered 500.", faults.error_rate.get()),
        (
            "orderflow_gateway_fault_outage",
            "1 while every new charge is answered 503.",
            f64::from(u8::from(faults.outage)),
        ),
    ];
    for (name, help, value) in gauges {
        family(&mut body, name, "gauge", help);
        sample(&mut body, name, &[], value);
    }
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    let mut rendered = format!("service=\"{SERVICE}\"");
    for (key, val) in labels {
        let _ = write!(rendered, ",{key}=\"{val}\"");
    }
    let _ = writeln!(out, "{name}{{{rendered}}} {value}");
}
