//! HTTP conventions shared by every service.

pub mod admin;
pub(crate) mod correlation;
pub(crate) mod health;
pub(crate) mod json;
pub(crate) mod metrics;
pub mod problem;
pub mod rate_limit;
pub(crate) mod shed;

pub use admin::{ADMIN_TOKEN_ENV, AdminGuard, AdminToken, Secret, require_admin};
pub(crate) use correlation::correlation_layer;
pub use correlation::{RequestCorrelation, RequestTrace};
pub(crate) use health::{Health, HealthCheck};
pub use json::ApiJson;
pub use problem::{Problem, ProblemType};
pub use rate_limit::{ClientRateLimit, RateLimitSettings, limit_per_client};

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

/// How long a client may take to send a request's headers, from the first byte of the request
/// (or from the end of the one before, on a kept-alive connection). A client slower than that
/// (slowloris: headers a byte at a time, or a connection opened and left idle) is disconnected,
/// instead of holding a connection and its task for as long as it likes.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` over HTTP/1.1 until `shutdown`, then stops accepting and finishes in-flight
/// requests. Headers must arrive within [`HEADER_READ_TIMEOUT`] (`axum::serve` has no timer, so
/// it waits for them forever).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, router, shutdown, HEADER_READ_TIMEOUT).await
}

async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    let graceful = accept_until(&listener, router, &shutdown, header_read_timeout).await;
    // Closed before waiting for the connections: new clients are refused, not left queued.
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Accepts connections on `listener` and serves `router` on each until `shutdown`; returns the
/// connections still open, to be shut down gracefully. The listener stays open: start-up serves
/// its health answers on the listener the service goes on to serve on (`crate::startup`).
pub(crate) async fn accept_until(
    listener: &TcpListener,
    router: Router,
    shutdown: &CancellationToken,
    header_read_timeout: Duration,
) -> hyper_util::server::graceful::GracefulShutdown {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt as _;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        // The peer's address goes on every request (per-client rate limits read it).
        let service = router.clone().map_request(move |mut req: axum::extract::Request<_>| {
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            req
        });
        let connection =
            graceful.watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
    graceful
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_disconnected_and_others_are_served() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let router = Router::new().route("/", get(|| async { "ok" }));
        let server = tokio::spawn(serve_with(listener, router, shutdown.clone(), Duration::from_millis(300)));

        let mut slow = TcpStream::connect(address).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n").await.unwrap(); // never the blank line
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut rest))
            .await
            .expect("the server keeps a connection whose headers never end")
            .unwrap();
        assert!(!String::from_utf8_lossy(&rest).contains("200 OK"), "{}", String::from_utf8_lossy(&rest));

        let mut client = TcpStream::connect(address).await.unwrap();
        client.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut answer))
            .await
            .unwrap()
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("ok"), "{answer}");

        shutdown.cancel();
        server.await.unwrap().unwrap();
    }
}
