//! The HTTP API: the summary, its live stream, the dashboard page and the OpenAPI document. The
//! kernel adds the defaults (problem+json errors, correlation ids, metrics, health).

mod dashboard;
mod gateway;
mod stream;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, header};
use orderflow_platform::Db;
use orderflow_platform::http::problem::{Problem, ProblemType};
use time::OffsetDateTime;

use crate::live::Live;
use crate::summary;

/// The service's OpenAPI 3.1 document, embedded at build time.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// What the routes share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The read model.
    pub db: Db,
    /// The live summary.
    pub live: Live,
    /// The payment gateway's base URL, for the dashboard's outage control.
    pub gateway_url: Option<String>,
    /// The client that calls it.
    pub http: reqwest::Client,
}

/// `/` (and `/dashboard.js`), `/analytics/summary`, `/analytics/stream`, `/analytics/gateway/faults` and
/// `/openapi.json`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/dashboard.js", get(dashboard::script))
        .route("/analytics/summary", get(summary_now))
        .route("/analytics/stream", get(stream::summaries))
        .route("/analytics/gateway/faults", get(gateway::faults).put(gateway::faults))
        .route("/openapi.json", get(openapi))
        .with_state(state)
}

/// `GET /analytics/summary`: read now, not from the live stream's last tick.
async fn summary_now(State(state): State<AppState>) -> Response {
    match summary::read(&state.db, OffsetDateTime::now_utc()).await {
        Ok(s) => axum::Json(s).into_response(),
        Err(e) if e.is_transient() => {
            tracing::warn!(error = %e, "reading the summary");
            Problem::new(ProblemType::Unavailable, "the read model is busy; retry").retry_after(1)
        }
        Err(e) => Problem::internal(&e).into_response(),
    }
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], OPENAPI_JSON)
}
