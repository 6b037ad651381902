//! `GET /`: the live dashboard, one page compiled into the binary. It loads nothing from
//! elsewhere (the Content-Security-Policy forbids it): its script reads `/analytics/stream` and
//! draws on canvases, and its gateway control goes through [`super::gateway`].

use axum::response::IntoResponse;
use http::{HeaderValue, header};

/// The page.
pub const PAGE: &str = include_str!("dashboard.html");

/// Same-origin only; the page's own inline style and script.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'";

pub(super) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        PAGE,
    )
}
