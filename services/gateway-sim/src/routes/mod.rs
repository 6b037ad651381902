//! HTTP routes, one file per resource. Handlers parse at the edge, call [`AppState`](crate::state::AppState)
//! and map outcomes to responses; they hold no lock across an `.await`.

pub(crate) mod admin;
pub mod charges;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod openapi;

use axum::http::Uri;

use crate::problem::ApiError;

/// 404 for unknown routes, as a problem.
pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_owned())
}

/// 405 for a known route with the wrong method, as a problem.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
