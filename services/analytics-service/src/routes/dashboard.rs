//! `GET /` and `GET /dashboard.js`: the live dashboard, one page and its script, compiled into
//! the binary. The Content-Security-Policy lets the page load nothing but its own script and
//! talk to nothing but this service: its script reads `/analytics/stream` and draws on
//! canvases, and its gateway control goes through `/analytics/gateway/faults`. No inline script
//! is allowed, so even a value that slipped past the script's escaping could not run.

use axum::response::IntoResponse;
use http::{HeaderValue, header};

/// The page.
pub const PAGE: &str = include_str!("dashboard.html");

/// Its script.
pub const SCRIPT: &str = include_str!("dashboard.js");

/// Same-origin only; the page's own script file, and inline style (canvas legends and bars).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

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

pub(super) async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        SCRIPT,
    )
}
