//! The console's login session and its CSRF tokens, both unforgeable without the admin token.
//!
//! A browser navigation cannot send the API's bearer header, so the console's login form takes
//! the admin token once (compared in constant time, [`TokenCheck`](crate::http::admin_token))
//! and answers a cookie: `v1.<expiry ms>.<nonce>.<mac>`, the MAC an HMAC-SHA-256 of the expiry
//! and nonce under a key derived from the admin token. Nothing is stored: every replica that
//! has the same token accepts it, a restart keeps it, and changing the token ends every
//! session. The expiry is inside the MAC, so a cookie cannot be extended; a stolen cookie works
//! until it expires ([`SESSION_LIFETIME_MS`]), which is why it is short and `HttpOnly`.
//!
//! Each form carries a CSRF token: an HMAC of the session cookie under the same key, with
//! another label, so it is tied to that session and useless with any other. The cookie is also
//! `SameSite=Strict`; the token covers browsers that ignore that.

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::config::AdminToken;

/// How long a login lasts.
pub const SESSION_LIFETIME_MS: i64 = 8 * 60 * 60 * 1000;
/// The cookie's name.
pub const COOKIE: &str = "dm3_admin_session";
/// Longest cookie value looked at; a longer one is refused unread.
const MAX_COOKIE_BYTES: usize = 128;

/// The keys that sign sessions and CSRF tokens.
#[derive(Clone)]
pub struct SessionKeys {
    key: [u8; 32],
}

impl SessionKeys {
    /// Derives the key from the admin token: the token itself never signs anything.
    pub fn new(token: &AdminToken) -> Self {
        Self { key: mac(token.expose().as_bytes(), &[b"dm3-bridge admin console session key v1"]) }
    }

    /// A new session for a user who just presented the token, valid until `now_ms +`
    /// [`SESSION_LIFETIME_MS`].
    pub fn issue(&self, now_ms: i64) -> Result<String, getrandom::Error> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce)?;
        let expiry = now_ms.saturating_add(SESSION_LIFETIME_MS).to_string();
        let nonce = hex(&nonce);
        let tag = hex(&self.sign(&[b"session", expiry.as_bytes(), nonce.as_bytes()]));
        Ok(format!("v1.{expiry}.{nonce}.{tag}"))
    }

    /// Whether `cookie` is a session this key issued that has not expired at `now_ms`.
    pub fn verify(&self, cookie: &str, now_ms: i64) -> bool {
        if cookie.len() > MAX_COOKIE_BYTES {
            return false;
        }
        let mut parts = cookie.split('.');
        let (Some("v1"), Some(expiry), Some(nonce), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let expected = hex(&self.sign(&[b"session", expiry.as_bytes(), nonce.as_bytes()]));
        let authentic: bool = expected.as_bytes().ct_eq(tag.as_bytes()).into();
        // Checked after the MAC, so a forged expiry is never parsed for its meaning.
        authentic && expiry.parse::<i64>().is_ok_and(|expiry| expiry > now_ms)
    }

    /// The CSRF token of the forms of session `cookie`.
    pub fn csrf(&self, cookie: &str) -> String {
        hex(&self.sign(&[b"csrf", cookie.as_bytes()]))
    }

    /// Whether `presented` is the CSRF token of session `cookie`, in constant time.
    pub fn csrf_matches(&self, cookie: &str, presented: &str) -> bool {
        self.csrf(cookie).as_bytes().ct_eq(presented.as_bytes()).into()
    }

    fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        mac(&self.key, parts)
    }
}

/// HMAC-SHA-256 of `parts`, each length-prefixed so that no two lists of parts sign alike.
fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length; the error case cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { return [0; 32] };
    for part in parts {
        mac.update(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn a_session_holds_until_it_expires_and_only_under_its_token() {
        let keys = SessionKeys::new(&AdminToken::new("the token"));
        let session = keys.issue(NOW).unwrap();
        assert!(keys.verify(&session, NOW));
        assert!(keys.verify(&session, NOW + SESSION_LIFETIME_MS - 1));
        assert!(!keys.verify(&session, NOW + SESSION_LIFETIME_MS), "expired");
        assert!(!SessionKeys::new(&AdminToken::new("another token")).verify(&session, NOW));
        assert_ne!(keys.issue(NOW).unwrap(), session, "each login is a new session");
    }

    #[test]
    fn a_session_cannot_be_extended_or_forged() {
        let keys = SessionKeys::new(&AdminToken::new("the token"));
        let session = keys.issue(NOW).unwrap();
        let parts: Vec<&str> = session.split('.').collect();
        let later = format!("v1.{}.{}.{}", i64::MAX, parts[2], parts[3]);
        assert!(!keys.verify(&later, NOW), "a changed expiry breaks the MAC");
        for forged in ["", "v1", "v1.1.2.3", "v2.x.y.z", &format!("{session}.extra"), &"a".repeat(4096)] {
            assert!(!keys.verify(forged, NOW), "{forged:?}");
        }
    }

    #[test]
    fn a_csrf_token_belongs_to_one_session() {
        let keys = SessionKeys::new(&AdminToken::new("the token"));
        let (one, two) = (keys.issue(NOW).unwrap(), keys.issue(NOW).unwrap());
        assert!(keys.csrf_matches(&one, &keys.csrf(&one)));
        assert!(!keys.csrf_matches(&two, &keys.csrf(&one)));
        assert!(!keys.csrf_matches(&one, ""));
    }
}
