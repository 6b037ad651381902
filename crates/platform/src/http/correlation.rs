//! `X-Correlation-ID`: validated when given (400 otherwise), generated when absent, available to
//! handlers as [`RequestCorrelation`], echoed on every response and recorded on the request span.
//! The request's trace context (the caller's `traceparent` continued, or a new trace) is opened
//! here too, on the same span, and is available to handlers as [`RequestTrace`].

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use http::request::Parts;
use orderflow_events::CorrelationId;
use orderflow_telemetry::trace::{self, TraceContext};
use tracing::Instrument;

use super::problem::{Problem, ProblemType};

/// The header name (same on HTTP and NATS).
pub(crate) const CORRELATION_HEADER: &str = "x-correlation-id";

/// The request's correlation id.
#[derive(Clone, Debug)]
pub struct RequestCorrelation(pub CorrelationId);

/// The request's trace context: what the events it publishes carry (through
/// `orderflow_messaging::publish::originate`) when spans are not recorded.
#[derive(Clone, Copy, Debug)]
pub struct RequestTrace(pub TraceContext);

/// Middleware: validate or generate, then echo. It also opens the request's span in the caller's
/// trace (its valid `traceparent`, else a new trace), which carries `service`, `correlation_id`
/// and `trace_id` into every log line of the request.
pub(crate) async fn correlation_layer(
    State(service): State<&'static str>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = match req.headers().get(CORRELATION_HEADER) {
        None => CorrelationId::generate(),
        Some(v) => match v.to_str().ok().map(CorrelationId::parse) {
            Some(Ok(id)) => id,
            _ => {
                let mut res = Problem::new(
                    ProblemType::InvalidCorrelationId,
                    "X-Correlation-ID must be 1-128 characters of A-Z a-z 0-9 . _ : -",
                )
                .into_response();
                let fresh = CorrelationId::generate();
                if let Ok(v) = HeaderValue::from_str(fresh.as_str()) {
                    res.headers_mut().insert(CORRELATION_HEADER, v);
                }
                return res;
            }
        },
    };
    req.extensions_mut().insert(RequestCorrelation(id.clone()));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let ingress = trace::Ingress::new(req.headers().get(trace::TRACEPARENT).and_then(|v| v.to_str().ok()));
    let span = tracing::info_span!(
        "http",
        otel.name = %format_args!("{} {route}", req.method()),
        otel.kind = "server",
        service,
        method = %req.method(),
        path = %req.uri().path(),
        correlation_id = %id.as_str(),
        trace_id = %ingress.trace_id(),
        order_id = tracing::field::Empty,
    );
    let trace = ingress.attach(&span);
    req.extensions_mut().insert(RequestTrace(trace));
    let mut res = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        res.headers_mut().insert(CORRELATION_HEADER, v);
    }
    res
}

impl<S: Send + Sync> FromRequestParts<S> for RequestCorrelation {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestCorrelation>()
            .cloned()
            .ok_or_else(|| Problem::new(ProblemType::Internal, "correlation middleware missing"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestTrace {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestTrace>()
            .copied()
            .ok_or_else(|| Problem::new(ProblemType::Internal, "correlation middleware missing"))
    }
}
