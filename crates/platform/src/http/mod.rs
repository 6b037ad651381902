//! HTTP conventions shared by every service.

pub mod admin;
pub(crate) mod correlation;
pub(crate) mod health;
pub(crate) mod json;
pub(crate) mod metrics;
pub mod problem;
pub(crate) mod shed;

pub use admin::{ADMIN_TOKEN_ENV, AdminGuard, AdminToken, Secret, require_admin};
pub(crate) use correlation::correlation_layer;
pub use correlation::{RequestCorrelation, RequestTrace};
pub(crate) use health::{Health, HealthCheck};
pub use json::ApiJson;
pub use problem::{Problem, ProblemType};

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Largest request body accepted (SPEC: 413 above 64 KiB).
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// The layers every service's router gets: body limit, correlation ids, HTTP metrics labelled
/// with `service`, a request timeout, panics turned into problem+json 500s, and a fallback 404
/// problem.
pub(crate) fn with_defaults(router: Router, service: &'static str) -> Router {
    router
        .fallback(|| async { Problem::new(ProblemType::NotFound, "no such route") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(service, correlation_layer))
        .layer(axum::middleware::from_fn_with_state(service, metrics::track))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(Problem::new(
                ProblemType::Internal,
                "the request failed unexpectedly",
            ))
        }))
}

/// Binds `host:port`, with a clear error when the port is taken.
pub(crate) async fn bind(host: &str, port: u16, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind((host, port)).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "{what}: port {port} on {host} is already in use; stop what uses it or pick another port"
            )
        } else {
            anyhow::anyhow!("{what}: cannot listen on {host}:{port}: {e}")
        }
    })
}

/// Serves `router` until `shutdown`, then stops accepting and finishes in-flight requests.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await
}
