//! `GET /openapi.json`: the hand-written OpenAPI 3.1 description of this service's HTTP API
//! (`src/openapi.json`), embedded at build time. A test checks it parses and names every route.

use axum::response::IntoResponse;
use http::{HeaderValue, header};

/// The document.
pub(crate) const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// Serves [`OPENAPI_JSON`] as `application/json`.
pub(crate) async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], OPENAPI_JSON)
}
