//! `/health/live` and `/health/ready`.
//!
//! Liveness answers 200 while the process can serve at all. Readiness runs every registered
//! check (NATS connected, database reachable, consumers running) and answers 503 naming what is
//! down, and 503 as soon as shutdown begins so load balancers stop sending traffic first.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use serde_json::json;

type CheckFn = dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync;

/// One named readiness check.
#[derive(Clone)]
pub(crate) struct HealthCheck {
    name: String,
    check: Arc<CheckFn>,
}

impl std::fmt::Debug for HealthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthCheck").field("name", &self.name).finish()
    }
}

impl HealthCheck {
    /// A check from an async closure returning `Err(reason)` when down.
    pub(crate) fn new<F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self { name: name.into(), check: Arc::new(move || Box::pin(f())) }
    }

    /// NATS connected.
    pub(crate) fn nats(client: async_nats::Client) -> Self {
        Self::new("nats", move || {
            let state = client.connection_state();
            async move {
                match state {
                    async_nats::connection::State::Connected => Ok(()),
                    other => Err(format!("{other:?}").to_lowercase()),
                }
            }
        })
    }

    /// Database answers `SELECT 1`.
    pub(crate) fn database(db: crate::Db) -> Self {
        Self::new("database", move || {
            let db = db.clone();
            async move { db.ping().await.map_err(|e| e.to_string()) }
        })
    }

    /// Every consumer runtime healthy (running, or deliberately paused).
    pub(crate) fn consumers(
        states: Vec<(String, tokio::sync::watch::Receiver<orderflow_messaging::ConsumerState>)>,
    ) -> Self {
        Self::new("consumers", move || {
            let down: Vec<String> = states
                .iter()
                .filter_map(|(name, rx)| {
                    let s = rx.borrow().clone();
                    (!s.is_healthy()).then(|| format!("{name}: {s:?}"))
                })
                .collect();
            async move { if down.is_empty() { Ok(()) } else { Err(down.join("; ")) } }
        })
    }
}

/// The health state of one service.
#[derive(Clone, Debug, Default)]
pub(crate) struct Health {
    checks: Vec<HealthCheck>,
    draining: Arc<AtomicBool>,
}

impl Health {
    /// No checks yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a check.
    pub(crate) fn with(mut self, check: HealthCheck) -> Self {
        self.checks.push(check);
        self
    }

    /// From now on readiness answers 503 (shutdown has begun).
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Runs every check (each bounded to 2 s).
    pub(crate) async fn report(&self) -> (bool, BTreeMap<String, String>) {
        let runs = self.checks.iter().map(|c| async move {
            let r = tokio::time::timeout(Duration::from_secs(2), (c.check)()).await;
            let r = r.unwrap_or_else(|_| Err("check timed out".to_owned()));
            (c.name.clone(), r)
        });
        let results = futures_util::future::join_all(runs).await;
        let mut ok = !self.draining.load(Ordering::SeqCst);
        let mut out = BTreeMap::new();
        if !ok {
            out.insert("shutdown".to_owned(), "draining".to_owned());
        }
        for (name, r) in results {
            match r {
                Ok(()) => out.insert(name, "ok".to_owned()),
                Err(e) => {
                    ok = false;
                    out.insert(name, e)
                }
            };
        }
        (ok, out)
    }

    /// `/health/live` and `/health/ready`.
    pub(crate) fn router(self) -> Router {
        Router::new().route("/health/live", get(live)).route("/health/ready", get(ready)).with_state(self)
    }
}

/// `/health/live`: the process is up and serving (also while it starts, `crate::startup`).
pub(crate) async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "live"}))
}

async fn ready(State(health): State<Health>) -> Response {
    let (ok, checks) = health.report().await;
    if ok {
        Json(json!({"status": "ready", "checks": checks})).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "checks": checks})))
            .into_response()
    }
}
