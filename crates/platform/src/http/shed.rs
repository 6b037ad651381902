//! Load shedding: at most `limit` requests of a service's own routes run at once; the next one
//! is answered `503` + `Retry-After: 1` at once instead of queuing behind them, so an overload
//! costs a retry, not a growing pile of waiting requests (and their memory). Health and metrics
//! are never shed: an overloaded service must still say so.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Semaphore;

use super::problem::{Problem, ProblemType};

/// How many requests may run at once.
#[derive(Clone, Debug)]
pub(crate) struct Limit {
    permits: Arc<Semaphore>,
    service: &'static str,
}

impl Limit {
    /// A limit of `n` requests at once (at least 1) for `service`'s routes.
    pub(crate) fn new(n: usize, service: &'static str) -> Self {
        Self { permits: Arc::new(Semaphore::new(n.max(1))), service }
    }
}

/// Middleware: runs the request within the limit, or sheds it.
pub(crate) async fn shed(State(limit): State<Limit>, request: Request, next: Next) -> Response {
    let Ok(_permit) = limit.permits.clone().try_acquire_owned() else {
        metrics::counter!(orderflow_telemetry::metrics::names::HTTP_SHED, "service" => limit.service)
            .increment(1);
        return Problem::new(ProblemType::Unavailable, "too many requests at once; retry in a second")
            .retry_after(1);
    };
    next.run(request).await
}
