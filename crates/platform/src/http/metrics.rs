//! `/metrics` and the per-request HTTP metrics.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use orderflow_telemetry::metrics::names;

/// `GET /metrics`: the whole process in Prometheus text format.
pub(crate) fn render() -> Response {
    let mut res = orderflow_telemetry::metrics::render().into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    res
}

/// Middleware: counts requests by route template (not raw path: ids would explode the label set)
/// and status, and times them.
pub(crate) async fn track(State(service): State<&'static str>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    // A fixed set: any other method (anyone can send `FOO /`) would be a new series each time.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD" | "OPTIONS") => m,
        _ => "other",
    }
    .to_owned();
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    let labels = [("service", service.to_owned()), ("method", method), ("route", route)];
    metrics::histogram!(names::HTTP_DURATION, &labels).record(started.elapsed().as_secs_f64());
    let [s, m, r] = labels;
    metrics::counter!(names::HTTP_REQUESTS, &[s, m, r, ("status", status)]).increment(1);
    res
}
