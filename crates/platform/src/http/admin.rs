//! Admin authorization (SPEC: Security): routes that change what others rely on — restocking
//! and repricing (`PUT /inventory/{id}`), the gateway simulator's faults and ledger — need
//! `Authorization: Bearer <admin token>`. Without it, or with a wrong one, they answer `401`
//! problem+json with `WWW-Authenticate: Bearer`. A service with no token configured keeps its
//! admin routes closed rather than open.
//!
//! The token is compared in constant time, never logged, and its `Debug` output is redacted.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use subtle::ConstantTimeEq as _;

use super::problem::{Problem, ProblemType};

/// The environment variable every service and `orderflow` read the token from.
pub const ADMIN_TOKEN_ENV: &str = "ORDERFLOW_ADMIN_TOKEN";

/// Shortest token accepted: a guessable token is no protection.
pub(crate) const MIN_LEN: usize = 16;

/// A secret setting (a token, a password): serialized as the plain string it is, shown as
/// `<redacted>` by `Debug`, so settings can be logged whole.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The admin token.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(Arc<str>);

/// Why a configured token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminTokenError {
    /// Fewer than `MIN_LEN` characters.
    #[error("the admin token must have at least {MIN_LEN} characters")]
    TooShort,
    /// Whitespace or a control character (it travels in an HTTP header).
    #[error("the admin token may only hold visible ASCII characters")]
    NotVisibleAscii,
}

impl AdminToken {
    /// A configured token, checked.
    ///
    /// # Errors
    /// Too short, or not visible ASCII.
    pub fn new(token: &str) -> Result<Self, AdminTokenError> {
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AdminTokenError::NotVisibleAscii);
        }
        if token.len() < MIN_LEN {
            return Err(AdminTokenError::TooShort);
        }
        Ok(Self(Arc::from(token)))
    }

    /// A fresh random token: 32 bytes from the operating system's generator, as hex.
    ///
    /// # Errors
    /// The operating system's random generator failed.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0_u8; 32];
        getrandom::fill(&mut bytes)?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self(Arc::from(hex)))
    }

    /// The token itself, to hand to a client or write to its file. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is the token, in time that does not depend on where they differ.
    pub(crate) fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// What [`require_admin`] checks against: the service's token, or none (admin routes closed).
#[derive(Clone, Debug, Default)]
pub struct AdminGuard {
    token: Option<AdminToken>,
}

impl AdminGuard {
    /// The guard of a configured token string (`None` or empty: closed).
    ///
    /// # Errors
    /// The token is too short or not visible ASCII.
    pub fn from_setting(token: Option<&Secret>) -> Result<Self, AdminTokenError> {
        let token =
            token.map(|t| t.expose().trim()).filter(|t| !t.is_empty()).map(AdminToken::new).transpose()?;
        Ok(Self { token })
    }

    /// Whether a token is configured.
    pub fn is_open_to_admins(&self) -> bool {
        self.token.is_some()
    }

    fn check(&self, authorization: Option<&str>) -> Result<(), &'static str> {
        let Some(token) = &self.token else {
            return Err("no admin token is configured on this service (ORDERFLOW_ADMIN_TOKEN or \
                        --admin-token), so its admin routes are closed");
        };
        let presented = authorization
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, credentials)| credentials.trim());
        match presented {
            None => Err("this route needs the header Authorization: Bearer <admin token>"),
            Some(p) if token.matches(p) => Ok(()),
            Some(_) => Err("the admin token is wrong"),
        }
    }
}

/// Middleware for admin routes: `401` problem+json with `WWW-Authenticate: Bearer` unless the
/// request carries the admin token.
pub async fn require_admin(State(guard): State<AdminGuard>, request: Request, next: Next) -> Response {
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match guard.check(authorization) {
        Ok(()) => next.run(request).await,
        Err(detail) => {
            tracing::warn!(path = %request.uri().path(), detail, "admin request refused");
            let mut res = Problem::new(ProblemType::Unauthorized, detail).into_response();
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"orderflow\""));
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-token";

    #[test]
    fn tokens_are_checked_when_configured() {
        assert_eq!(AdminToken::new("short"), Err(AdminTokenError::TooShort));
        assert_eq!(AdminToken::new("with a space 123456"), Err(AdminTokenError::NotVisibleAscii));
        assert!(AdminGuard::from_setting(Some(&Secret::new("  "))).is_ok_and(|g| !g.is_open_to_admins()));
        assert!(AdminGuard::from_setting(Some(&Secret::new(TOKEN))).is_ok_and(|g| g.is_open_to_admins()));
        assert_eq!(format!("{:?}", Secret::new(TOKEN)), "<redacted>");
    }

    #[test]
    fn the_bearer_scheme_and_the_exact_token_are_required() {
        let guard = AdminGuard::from_setting(Some(&Secret::new(TOKEN))).unwrap_or_default();
        assert!(guard.check(Some(&format!("Bearer {TOKEN}"))).is_ok());
        assert!(guard.check(Some(&format!("bearer {TOKEN}"))).is_ok(), "the scheme is case-insensitive");
        assert!(guard.check(Some(&format!("Basic {TOKEN}"))).is_err());
        assert!(guard.check(Some(&format!("Bearer {TOKEN}x"))).is_err());
        assert!(guard.check(Some("Bearer 0123456789abcdef-toke")).is_err());
        assert!(guard.check(None).is_err());
        assert!(AdminGuard::default().check(Some(&format!("Bearer {TOKEN}"))).is_err(), "no token: closed");
    }

    #[test]
    fn generated_tokens_are_long_random_and_redacted() {
        let (a, b) = (AdminToken::generate(), AdminToken::generate());
        let (a, b) = (a.map(|t| t.expose().to_owned()), b.map(|t| t.expose().to_owned()));
        assert!(a.as_ref().is_ok_and(|t| t.len() == 64 && AdminToken::new(t).is_ok()));
        assert_ne!(a.ok(), b.ok());
        assert_eq!(format!("{:?}", AdminToken::new(TOKEN)), "Ok(AdminToken(<redacted>))");
    }
}
