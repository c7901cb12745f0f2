//! Session tokens: what `POST /profile` and `POST /auth` hand out, and what
//! `Authorization: Bearer` must carry on the delivery routes (docs/protocol.md §9.2).
//!
//! Clients treat the token as opaque: they only need it as a JSON string. So instead of the
//! reference's HS256 JWT (whose secret is derived from the DS signing key) a token is 32 bytes
//! from the OS generator, base64url without padding (43 characters). Why:
//! - nothing to forge: there is no signing secret to leak or derive, and no claims to parse;
//! - the database keeps only the token's SHA-256 (`sessions.token_hash`), so a database copy
//!   logs nobody in. A token has 256 bits of entropy, so an unsalted fast hash is enough;
//! - no secret is compared in variable time: the token is hashed and the *hash* is looked up
//!   by the database. Timing can at most reveal a prefix of a SHA-256 output, which does not
//!   help to find a token with that hash.
//!
//! A token is bound to the normalized name it was issued for. A challenge login lives
//! [`SESSION_TTL_MS`] (one hour, as the reference's session JWT); the session of a first
//! registration lives five minutes, because a signed profile is public and proves no key
//! (`delivery::accounts`). `POST /profile` on an existing account gets a token that opens
//! nothing: the reference binds that one to the *address*, where no route takes it (P18).
//! Tokens never reach a log line: not here, not in the routes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dm3::ens::EnsName;
use zeroize::Zeroizing;

use super::Relay;
use super::names::parse_name;
use crate::clock::now_ms;
use crate::protocol::{DeliveryError, LiveSession};
use crate::store::{StoreError, TokenHash};
use crate::telemetry::metrics::SESSIONS_ISSUED;

/// How long a session token is valid: one hour, as the reference DS (§9.2 step 4).
pub const SESSION_TTL_MS: i64 = 3_600 * 1_000;

/// How long the session of a first registration lives: long enough for the sign-up that
/// follows it, short enough that a replayed profile buys little (`delivery::accounts`).
pub const REGISTRATION_SESSION_TTL_MS: i64 = 5 * 60 * 1_000;

const TOKEN_BYTES: usize = 32;
/// base64url of 32 bytes, unpadded.
const TOKEN_LEN: usize = 43;

/// How a session was opened: it decides the session's lifetime, and labels the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LoginPath {
    /// `POST /profile` created the account: a replayable document, so a short session
    /// (`delivery::accounts` says why one is given at all).
    Registration,
    /// `POST /auth`: the account's key signed a fresh challenge.
    Challenge,
}

impl LoginPath {
    fn label(self) -> &'static str {
        match self {
            Self::Registration => "profile",
            Self::Challenge => "challenge",
        }
    }

    fn ttl_ms(self) -> i64 {
        match self {
            Self::Registration => REGISTRATION_SESSION_TTL_MS,
            Self::Challenge => SESSION_TTL_MS,
        }
    }
}

/// A fresh token; zeroized when dropped. No `Debug`: it must not end up in a log line.
struct SessionToken(Zeroizing<String>);

impl SessionToken {
    fn generate() -> Result<Self, DeliveryError> {
        let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
        getrandom::fill(bytes.as_mut()).map_err(|_| DeliveryError::from(StoreError::Random))?;
        Ok(Self(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()))))
    }
}

fn token_hash(token: &str) -> TokenHash {
    TokenHash::from_bytes(dm3::hash::sha256(token.as_bytes()))
}

/// Cheap shape check, so that arbitrary header text is never hashed or looked up.
fn looks_like_token(token: &str) -> bool {
    token.len() == TOKEN_LEN && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Relay {
    /// Opens a session for `name` and returns its token, for the client only.
    pub(super) async fn open_session(
        &self,
        name: &EnsName,
        path: LoginPath,
    ) -> Result<String, DeliveryError> {
        let token = SessionToken::generate()?;
        let now = now_ms();
        let expires = now.saturating_add(path.ttl_ms());
        self.store.create_session(&token_hash(&token.0), name, now, expires).await?;
        metrics::counter!(SESSIONS_ISSUED, "via" => path.label()).increment(1);
        Ok(token.0.as_str().to_owned())
    }

    /// The answer to `POST /profile` on an existing account: a token of the right shape that
    /// opens nothing. The reference binds that token to the address, where no route accepts
    /// it (P18); a client that uses it gets 401 and logs in with the challenge. Nothing is
    /// stored, so a replayed profile costs the node no write.
    pub(super) fn address_bound_token(&self) -> Result<String, DeliveryError> {
        metrics::counter!(SESSIONS_ISSUED, "via" => "address_bound").increment(1);
        Ok(SessionToken::generate()?.0.as_str().to_owned())
    }

    /// `Authorization: Bearer <token>` on a route of `name`: the token must exist, be
    /// unexpired, and belong to the normalized `name`.
    pub(super) async fn check_token(
        &self,
        name: &str,
        bearer: Option<&str>,
    ) -> Result<EnsName, DeliveryError> {
        let token = bearer.ok_or_else(|| {
            DeliveryError::Unauthorized("missing Authorization: Bearer <token>; log in first".to_owned())
        })?;
        Ok(self.session(name, token).await?.name)
    }

    /// The session `token` opens for `name`, checked as [`Relay::check_token`] checks a bearer
    /// token; live delivery also needs its end, to push nothing after it.
    pub(super) async fn session(&self, name: &str, token: &str) -> Result<LiveSession, DeliveryError> {
        let name = parse_name(name)?;
        let invalid = || DeliveryError::Unauthorized("invalid token; log in again".to_owned());
        if !looks_like_token(token) {
            return Err(invalid());
        }
        let session = self.store.get_session(&token_hash(token)).await?.ok_or_else(invalid)?;
        if session.expires_at_ms <= now_ms() {
            return Err(DeliveryError::Unauthorized("the token has expired; log in again".to_owned()));
        }
        if session.name != name {
            return Err(DeliveryError::Unauthorized(format!("the token is not valid for {name}")));
        }
        Ok(LiveSession { name, expires_at_ms: session.expires_at_ms })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_are_random_url_safe_and_43_characters() {
        let a = SessionToken::generate().unwrap();
        let b = SessionToken::generate().unwrap();
        assert!(looks_like_token(&a.0));
        assert_ne!(*a.0, *b.0);
        assert_ne!(token_hash(&a.0), token_hash(&b.0));
        assert!(!looks_like_token("short"));
        assert!(!looks_like_token(&format!("{}=", &a.0[..42])));
    }
}
