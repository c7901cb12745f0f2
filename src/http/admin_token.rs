//! The admin API's bearer token check, in constant time.
//!
//! The token comes from `[admin] token` or `DM3_BRIDGE_ADMIN__TOKEN`. Without one the whole
//! API is disabled and every request gets a 403 saying how to enable it; with one, a request
//! needs `Authorization: Bearer <token>` or gets a 401.
//!
//! Both the presented and the configured token are hashed (SHA-256) and the digests compared
//! with `subtle`'s constant-time equality, so neither the position of the first wrong byte nor
//! the length of the token shows in the response time. The token is never logged: the
//! middleware logs nothing about the header, and [`AdminToken`] prints `[redacted]`.
//!
//! It is here, below the admin API, because `/metrics` (`crate::routes::metrics`) is behind the
//! same token: both faces use this one check, and neither reaches into the other for it.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dm3::hash::sha256;
use subtle::ConstantTimeEq as _;

use super::admin_error::AdminError;
use crate::config::AdminToken;

/// The configured token, kept only as its digest.
#[derive(Clone)]
pub struct TokenCheck {
    digest: Option<[u8; 32]>,
}

impl TokenCheck {
    pub fn new(token: Option<&AdminToken>) -> Self {
        Self { digest: token.map(|t| sha256(t.expose().as_bytes())) }
    }

    pub fn is_enabled(&self) -> bool {
        self.digest.is_some()
    }

    /// Checks an `Authorization` header value.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), AdminError> {
        if self.digest.is_none() {
            return Err(AdminError::new(
                StatusCode::FORBIDDEN,
                "admin_disabled",
                "the admin API is disabled on this node: set admin.token (or DM3_BRIDGE_ADMIN__TOKEN)",
            ));
        }
        let presented = authorization
            .and_then(crate::http::bearer::token)
            .ok_or_else(|| AdminError::unauthorized("missing Authorization: Bearer <admin token>"))?;
        if self.matches(presented) {
            Ok(())
        } else {
            Err(AdminError::unauthorized("the admin token is wrong"))
        }
    }

    /// Whether `presented` is the token, in constant time (the console's login form).
    pub fn matches(&self, presented: &str) -> bool {
        self.digest.as_ref().is_some_and(|expected| bool::from(sha256(presented.as_bytes()).ct_eq(expected)))
    }
}

/// The middleware in front of every admin route.
pub async fn require_token(State(check): State<TokenCheck>, request: Request, next: Next) -> Response {
    let header = request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    match check.check(header) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_passes() {
        let check = TokenCheck::new(Some(&AdminToken::new("correct horse battery staple")));
        for scheme in ["Bearer", "bearer", "BEARER"] {
            assert!(check.check(Some(&format!("{scheme} correct horse battery staple"))).is_ok(), "{scheme}");
        }
        for bad in [
            None,
            Some("correct horse battery staple"),
            Some("Bearer wrong"),
            Some("Bearer "),
            Some("Basic x"),
        ] {
            assert_eq!(check.check(bad).map_err(|e| e.status), Err(StatusCode::UNAUTHORIZED), "{bad:?}");
        }
        let disabled = TokenCheck::new(None);
        assert_eq!(disabled.check(Some("Bearer anything")).map_err(|e| e.status), Err(StatusCode::FORBIDDEN));
    }
}
