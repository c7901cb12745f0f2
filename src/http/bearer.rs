//! `Authorization: Bearer <token>`, read the same way by every route that takes a token.
//!
//! The scheme name is case-insensitive (RFC 9110 §11.1: `Bearer`, `bearer` and `BEARER` are
//! one scheme), and clients differ in what they send; the delivery routes and the admin API
//! once disagreed on it. One reader keeps them agreeing. It only splits the header: checking
//! the token is each caller's job (a session lookup, a constant-time digest comparison).

/// The token of an `Authorization` header value, if it uses the Bearer scheme and carries one.
pub fn token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The bearer token of a request's headers, if any.
pub fn from_headers(headers: &axum::http::HeaderMap) -> Option<&str> {
    token(headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_required() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "BeArEr  abc ", " Bearer abc"] {
            assert_eq!(token(value), Some("abc"), "{value:?}");
        }
        for value in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "abc", ""] {
            assert_eq!(token(value), None, "{value:?}");
        }
    }
}
