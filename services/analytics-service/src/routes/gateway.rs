//! `GET`/`PUT /analytics/gateway/faults`: the dashboard's gateway control, passed through to
//! the payment gateway's admin API (`/admin/faults`) with the caller's `Authorization` header.
//! The gateway checks the admin token; this service holds none. Same-origin for the page, so
//! the gateway needs no CORS.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use orderflow_platform::http::problem::{Problem, ProblemType};

use super::AppState;

/// How long the gateway has to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn faults(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(base) = state.gateway_url.as_deref() else {
        return Problem::new(ProblemType::NotFound, "no payment gateway is configured (gateway_url)")
            .into_response();
    };
    let url = format!("{}/admin/faults", base.trim_end_matches('/'));
    let mut request = state.http.request(method, &url).timeout(TIMEOUT);
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        request = request.header(header::AUTHORIZATION, auth.clone());
    }
    if !body.is_empty() {
        request =
            request.header(header::CONTENT_TYPE, HeaderValue::from_static("application/json")).body(body);
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(error = %e, "the payment gateway did not answer");
            return Problem::new(ProblemType::Unavailable, "the payment gateway did not answer")
                .into_response();
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let www_authenticate = answer.headers().get(header::WWW_AUTHENTICATE).cloned();
    match answer.bytes().await {
        Ok(bytes) => {
            let mut res = (status, bytes).into_response();
            for (name, value) in
                [(header::CONTENT_TYPE, content_type), (header::WWW_AUTHENTICATE, www_authenticate)]
            {
                if let Some(value) = value {
                    res.headers_mut().insert(name, value);
                }
            }
            res
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading the payment gateway's answer");
            Problem::new(ProblemType::Unavailable, "the payment gateway's answer was cut off").into_response()
        }
    }
}
