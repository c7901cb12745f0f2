//! Checking the homeserver's token on every application-service request.
//!
//! The homeserver sends `Authorization: Bearer <hs_token>`; older ones send `?access_token=`
//! instead (the API's legacy form), which we accept only when no header is present. The
//! comparison is constant-time over SHA-256 digests of both tokens, so neither the content nor
//! the length of the expected token can be learned from response times.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::secret::HsToken;

/// The outcome of the token check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// The request carries the expected token.
    Valid,
    /// The request carries no token at all.
    Missing,
    /// The request carries another token.
    Wrong,
}

/// The expected token, kept only as its digest.
#[derive(Clone)]
pub struct HsTokenVerifier {
    digest: [u8; 32],
}

impl HsTokenVerifier {
    /// A verifier for `token`.
    pub fn new(token: &HsToken) -> Self {
        Self { digest: Sha256::digest(token.expose().as_bytes()).into() }
    }

    /// Checks the token of a request with these headers and this raw query string.
    pub fn check(&self, headers: &HeaderMap, query: Option<&str>) -> TokenCheck {
        let presented = match headers.get(AUTHORIZATION) {
            Some(value) => value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::to_owned),
            None => query.and_then(query_token),
        };
        let Some(presented) = presented else {
            return if headers.contains_key(AUTHORIZATION) { TokenCheck::Wrong } else { TokenCheck::Missing };
        };
        let digest: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        if bool::from(digest.ct_eq(&self.digest)) { TokenCheck::Valid } else { TokenCheck::Wrong }
    }
}

/// `access_token` from a query string (percent-decoded).
fn query_token(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use axum::http::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn bearer_header_and_legacy_query() {
        let v = HsTokenVerifier::new(&HsToken::new("tok"));
        assert_eq!(v.check(&headers("Bearer tok"), None), TokenCheck::Valid);
        assert_eq!(v.check(&headers("Bearer other"), None), TokenCheck::Wrong);
        assert_eq!(v.check(&headers("Basic tok"), None), TokenCheck::Wrong);
        assert_eq!(v.check(&HeaderMap::new(), None), TokenCheck::Missing);
        assert_eq!(v.check(&HeaderMap::new(), Some("access_token=tok")), TokenCheck::Valid);
        assert_eq!(v.check(&HeaderMap::new(), Some("access_token=tokk")), TokenCheck::Wrong);
        // A header wins over the query: a wrong header is not rescued by a right query token.
        assert_eq!(v.check(&headers("Bearer x"), Some("access_token=tok")), TokenCheck::Wrong);
    }
}
