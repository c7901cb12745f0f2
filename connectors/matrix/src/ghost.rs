//! Ghosts: the Matrix users that stand in for remote (DM3) identities, and the reversible
//! mapping between the two.
//!
//! A ghost of `alice.eth` on `example.org` is `@_dm3_alice.eth:example.org`. The prefix starts
//! with `_` as the spec recommends for exclusive application-service namespaces, and the
//! registration claims `@_dm3_.*` exclusively (see [`crate::registration`]).
//!
//! **Escaping.** A conforming Matrix localpart holds only `a-z 0-9 . _ = - / +`, while a DM3
//! name is any ENS name (`Alice.eth`, `café.eth`, `0x12ab….addr.dm3.eth`). We keep
//! `a-z 0-9 . _ -` as they are and write every other UTF-8 byte as `=` and two lowercase hex
//! digits (`café` → `caf=c3=a9`), `=` itself included. `/` and `+` are escaped too, although
//! legal, because some clients and bridges treat them specially. The mapping is:
//! - *injective*: two identities never share a ghost (so nobody can impersonate another);
//! - *canonical*: [`GhostNamespace::identity`] only accepts the one spelling
//!   [`GhostNamespace::user_id`] produces (lowercase hex, nothing escaped that needed no
//!   escaping), so one identity never has two ghosts either.
//!
//! A full user id is at most 255 bytes; an identity too long for that has no ghost.

use dm3_bridge_connector::RemoteIdentity;
use ruma::{OwnedServerName, OwnedUserId, ServerName, UserId};

/// The localpart prefix of every ghost.
pub const DEFAULT_GHOST_PREFIX: &str = "_dm3_";

/// Why an identity has no ghost, or a user id is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GhostError {
    /// The escaped identity makes a user id longer than Matrix allows.
    #[error("the ghost of `{0}` would be longer than the 255 bytes Matrix allows in a user id")]
    TooLong(String),
    /// The user id is on another server or lacks the ghost prefix.
    #[error("`{0}` is not in this bridge's ghost namespace")]
    NotAGhost(String),
    /// The localpart after the prefix is not an escaping this bridge produces.
    #[error("`{0}` is not a valid escaped identity")]
    BadEscape(String),
    /// The prefix is not a conforming localpart (configuration error).
    #[error("`{0}` is not usable as a ghost prefix: it must be non-empty and use only a-z 0-9 . _ -")]
    BadPrefix(String),
}

/// Bytes kept as they are in a localpart.
fn kept(byte: u8) -> bool {
    matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-')
}

/// Escapes `text` into localpart characters (see the module doc).
pub fn escape_localpart(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if kept(byte) {
            out.push(char::from(byte));
        } else {
            out.push('=');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
    out
}

/// Reverses [`escape_localpart`]; `None` for anything it would not have produced.
pub fn unescape_localpart(escaped: &str) -> Option<String> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'=' {
            let high = lower_hex(*bytes.get(i + 1)?)?;
            let low = lower_hex(*bytes.get(i + 2)?)?;
            let decoded = (high << 4) | low;
            if kept(decoded) {
                return None; // not canonical: this byte is never escaped
            }
            out.push(decoded);
            i += 3;
        } else if kept(byte) {
            out.push(byte);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

fn lower_hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// The ghosts of one bridge on one homeserver: a prefix and a server name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GhostNamespace {
    prefix: String,
    server_name: OwnedServerName,
}

impl GhostNamespace {
    /// Ghosts `@<prefix><escaped>:<server_name>`.
    pub fn new(prefix: &str, server_name: &ServerName) -> Result<Self, GhostError> {
        if prefix.is_empty() || !prefix.bytes().all(kept) {
            return Err(GhostError::BadPrefix(prefix.to_owned()));
        }
        Ok(Self { prefix: prefix.to_owned(), server_name: server_name.to_owned() })
    }

    /// The default namespace, `@_dm3_…:<server_name>`.
    pub fn dm3(server_name: &ServerName) -> Self {
        Self { prefix: DEFAULT_GHOST_PREFIX.to_owned(), server_name: server_name.to_owned() }
    }

    /// The localpart prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The homeserver's name.
    pub fn server_name(&self) -> &ServerName {
        &self.server_name
    }

    /// The localpart of the ghost of `identity` (what `/register` takes as `username`).
    pub fn localpart(&self, identity: &RemoteIdentity) -> String {
        format!("{}{}", self.prefix, escape_localpart(identity.as_str()))
    }

    /// The ghost of `identity`.
    pub fn user_id(&self, identity: &RemoteIdentity) -> Result<OwnedUserId, GhostError> {
        let id = format!("@{}:{}", self.localpart(identity), self.server_name);
        UserId::parse(&id).map_err(|_| GhostError::TooLong(identity.to_string()))
    }

    /// The identity behind a ghost; an error for a user who is not one of our ghosts.
    pub fn identity(&self, user_id: &UserId) -> Result<RemoteIdentity, GhostError> {
        let not_ours = || GhostError::NotAGhost(user_id.to_string());
        if user_id.server_name() != self.server_name {
            return Err(not_ours());
        }
        let escaped = user_id.localpart().strip_prefix(self.prefix.as_str()).ok_or_else(not_ours)?;
        let bad = || GhostError::BadEscape(user_id.to_string());
        let text = unescape_localpart(escaped).ok_or_else(bad)?;
        RemoteIdentity::new(text).map_err(|_| bad())
    }

    /// Whether `user_id` is in this namespace at all (ours to answer for, even if malformed).
    pub fn contains(&self, user_id: &UserId) -> bool {
        user_id.server_name() == self.server_name && user_id.localpart().starts_with(self.prefix.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use proptest::prelude::*;

    use super::*;

    fn ns() -> GhostNamespace {
        GhostNamespace::dm3(<&ServerName>::try_from("example.org").unwrap())
    }

    fn identity(s: &str) -> RemoteIdentity {
        RemoteIdentity::new(s).unwrap()
    }

    #[test]
    fn examples() {
        let ns = ns();
        assert_eq!(ns.user_id(&identity("alice.eth")).unwrap().as_str(), "@_dm3_alice.eth:example.org");
        let addr = "0x71c7656ec7ab88b098defb751b7401b5f6d8976f.addr.dm3.eth";
        assert_eq!(ns.user_id(&identity(addr)).unwrap().as_str(), format!("@_dm3_{addr}:example.org"));
        assert_eq!(ns.localpart(&identity("Café=/+.eth")), "_dm3_=43af=c3=a9=3d=2f=2b.eth");
        let ghost = ns.user_id(&identity("Café=/+.eth")).unwrap();
        assert_eq!(ns.identity(&ghost).unwrap().as_str(), "Café=/+.eth");
    }

    #[test]
    fn non_canonical_and_foreign_ids_are_refused() {
        let ns = ns();
        let parse = |s: &str| UserId::parse(s).unwrap();
        assert!(matches!(ns.identity(&parse("@_dm3_=61lice:example.org")), Err(GhostError::BadEscape(_))));
        assert!(matches!(ns.identity(&parse("@_dm3_=C3=A9:example.org")), Err(GhostError::BadEscape(_))));
        assert!(matches!(ns.identity(&parse("@_dm3_=c3:example.org")), Err(GhostError::BadEscape(_))));
        assert!(matches!(ns.identity(&parse("@_dm3_a=2:example.org")), Err(GhostError::BadEscape(_))));
        assert!(matches!(ns.identity(&parse("@_dm3_:example.org")), Err(GhostError::BadEscape(_))));
        assert!(matches!(ns.identity(&parse("@alice:example.org")), Err(GhostError::NotAGhost(_))));
        assert!(matches!(ns.identity(&parse("@_dm3_alice:other.org")), Err(GhostError::NotAGhost(_))));
        assert!(ns.contains(&parse("@_dm3_=zz:example.org")));
    }

    #[test]
    fn too_long_identities_have_no_ghost() {
        assert!(matches!(ns().user_id(&identity(&"é".repeat(100))), Err(GhostError::TooLong(_))));
    }

    #[test]
    fn prefixes_are_checked() {
        let server = <&ServerName>::try_from("example.org").unwrap();
        assert!(GhostNamespace::new("_tg_", server).is_ok());
        assert!(GhostNamespace::new("", server).is_err());
        assert!(GhostNamespace::new("A", server).is_err());
    }

    proptest! {
        #[test]
        fn escaping_round_trips(s in "\\PC{1,40}") {
            let escaped = escape_localpart(&s);
            prop_assert!(escaped.bytes().all(|b| kept(b) || b == b'='));
            prop_assert_eq!(unescape_localpart(&escaped), Some(s));
        }

        #[test]
        fn unescaping_is_canonical(s in "[a-z0-9._=-]{0,30}") {
            // Every localpart that unescapes is the escaping of what it unescapes to.
            if let Some(text) = unescape_localpart(&s) {
                prop_assert_eq!(escape_localpart(&text), s);
            }
        }

        #[test]
        fn ghosts_round_trip(s in "[^\\s\\p{Cc}]{1,60}") {
            let ns = ns();
            let id = identity(&s);
            if let Ok(ghost) = ns.user_id(&id) {
                prop_assert!(ns.contains(&ghost));
                prop_assert_eq!(ns.identity(&ghost).unwrap(), id);
            }
        }
    }
}
