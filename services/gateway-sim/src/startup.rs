//! Builds the application from a typed [`Config`] and runs it until a shutdown token fires.

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use orderflow_platform::http::require_admin;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::configuration::Config;
use crate::routes::{admin, charges, health, metrics, openapi};
use crate::state::AppState;

/// Largest accepted request body (SPEC: 64 KiB; larger is a 413).
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// The simulator's routes over `state`, for tests and for mounting inside `orderflow up`.
pub(crate) fn router(state: AppState) -> Router {
    let admin_routes = Router::new()
        .route("/admin/faults", get(admin::get_faults).put(admin::put_faults))
        .route("/admin/charges", get(admin::list_charges))
        .route_layer(from_fn_with_state(state.admin().clone(), require_admin));
    Router::new()
        .route("/charges", post(charges::create))
        .merge(admin_routes)
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::openapi))
        .fallback(crate::routes::not_found)
        .method_not_allowed_fallback(crate::routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Binds the configured address.
pub async fn bind(config: &Config) -> anyhow::Result<TcpListener> {
    let address = config.address();
    TcpListener::bind(address).await.with_context(|| format!("binding gateway-sim to {address}"))
}

/// Serves on `listener` until `shutdown` is cancelled, then stops accepting and lets in-flight
/// requests finish within `config.shutdown_timeout()` (injected latency is cut short).
pub async fn run(listener: TcpListener, config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let address = listener.local_addr().context("reading the bound address")?;
    let state = AppState::open(&config, shutdown.clone()).await.context("opening the ledger")?;
    // Prune hourly, or once per TTL when that is shorter (tests).
    let every = config.idempotency_key_ttl().min(std::time::Duration::from_secs(3600));
    tokio::spawn(expire_keys(state.clone(), every, shutdown.clone()));
    let server = orderflow_platform::http::serve(listener, router(state), shutdown.clone());
    tokio::pin!(server);
    tracing::info!(%address, "gateway-sim listening");

    tokio::select! {
        result = &mut server => return result.context("serving gateway-sim"),
        () = shutdown.cancelled() => {}
    }
    tracing::info!("gateway-sim draining");
    match tokio::time::timeout(config.shutdown_timeout(), server).await {
        Ok(result) => result.context("serving gateway-sim")?,
        Err(_) => tracing::warn!(
            timeout_secs = config.shutdown_timeout_secs,
            "drain deadline passed; dropping open connections"
        ),
    }
    tracing::info!("gateway-sim stopped");
    Ok(())
}

/// Forgets idempotency keys past their TTL every `every`, until `shutdown`.
async fn expire_keys(state: AppState, every: std::time::Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match state.ledger().expire_keys().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "idempotency keys past their retention forgotten"),
            Err(e) => tracing::warn!(error = %e, "expiring idempotency keys failed"),
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    Ok(())
}
