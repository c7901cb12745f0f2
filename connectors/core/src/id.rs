//! The typed ids of the neutral model, each a newtype with a validating constructor.
//!
//! Every id a connector hands the engine ends up as a database key, a log field and, on the
//! way back, a URL path segment of some network's API. So each one is checked once, at the
//! boundary, and is a distinct type afterwards: a [`ConversationId`] cannot be passed where a
//! [`NetworkMessageId`] is expected.
//!
//! Most ids are *opaque*: their content belongs to the network (a Matrix room id `!abc`, a
//! Telegram chat id `-100123`). For those the rules are only what keeps them safe to store and
//! log: 1 to 255 bytes, no whitespace and no control characters. Two ids are stricter because
//! the bridge mints them itself:
//! - [`NetworkId`] names a connector (`matrix`, `telegram`): `[a-z][a-z0-9-]{0,31}`;
//! - [`IdempotencyKey`] becomes a transaction id in a URL path: `[A-Za-z0-9._~-]{1,128}`, the
//!   URL-unreserved characters, so no network needs to escape it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest opaque id, in bytes.
pub const MAX_OPAQUE_ID_BYTES: usize = 255;
/// Longest [`IdempotencyKey`], in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 128;
/// Longest [`NetworkId`], in bytes.
pub const MAX_NETWORK_ID_BYTES: usize = 32;

/// Why a string is not a valid id of the named kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id is empty.
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    /// The id is longer than its kind allows.
    #[error("{kind} is {len} bytes long; at most {max} are allowed")]
    TooLong { kind: &'static str, len: usize, max: usize },
    /// The id holds a character its kind does not allow.
    #[error("{kind} contains {found:?}, which is not allowed")]
    BadCharacter { kind: &'static str, found: char },
}

fn check_opaque(kind: &'static str, s: &str) -> Result<(), IdError> {
    check_length(kind, s, MAX_OPAQUE_ID_BYTES)?;
    match s.chars().find(|c| c.is_whitespace() || c.is_control()) {
        Some(found) => Err(IdError::BadCharacter { kind, found }),
        None => Ok(()),
    }
}

fn check_length(kind: &'static str, s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > max {
        return Err(IdError::TooLong { kind, len: s.len(), max });
    }
    Ok(())
}

fn check_network_id(kind: &'static str, s: &str) -> Result<(), IdError> {
    check_length(kind, s, MAX_NETWORK_ID_BYTES)?;
    let mut chars = s.chars();
    if let Some(first) = chars.next()
        && !first.is_ascii_lowercase()
    {
        return Err(IdError::BadCharacter { kind, found: first });
    }
    match chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        Some(found) => Err(IdError::BadCharacter { kind, found }),
        None => Ok(()),
    }
}

fn check_idempotency_key(kind: &'static str, s: &str) -> Result<(), IdError> {
    check_length(kind, s, MAX_IDEMPOTENCY_KEY_BYTES)?;
    match s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-'))) {
        Some(found) => Err(IdError::BadCharacter { kind, found }),
        None => Ok(()),
    }
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `id` (see the module doc for the rules of this kind).
            pub fn new(id: impl Into<String>) -> Result<Self, IdError> {
                let id = id.into();
                $check($kind, &id)?;
                Ok(Self(id))
            }

            /// The id as the network (or the bridge) wrote it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(id: String) -> Result<Self, IdError> {
                Self::new(id)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(id: &str) -> Result<Self, IdError> {
                Self::new(id)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

typed_id!(
    /// Which connector: `matrix`, `telegram`. Scopes every other id in the database.
    NetworkId,
    "network id",
    check_network_id
);
typed_id!(
    /// A user of the network, as the network names them (a Matrix user id `@bob:example.org`,
    /// a Telegram user id `12345`).
    NetworkUserId,
    "network user id",
    check_opaque
);
typed_id!(
    /// A conversation on the network: the portal the bridge maps to a DM3 conversation (a Matrix
    /// room id, a Telegram chat id).
    ConversationId,
    "conversation id",
    check_opaque
);
typed_id!(
    /// One message or event on the network (a Matrix event id, a Telegram message id), the
    /// network half of the engine's message map.
    NetworkMessageId,
    "network message id",
    check_opaque
);
typed_id!(
    /// A user on the bridge's other side, for whom a connector keeps a stand-in on its network
    /// (a Matrix ghost). For the engine this is a DM3 name; to a connector it is opaque text that
    /// it maps reversibly onto its own user ids.
    RemoteIdentity,
    "remote identity",
    check_opaque
);
typed_id!(
    /// The key that makes an outbound send idempotent: the engine derives it from the source
    /// message (the DM3 message hash), so a retried send is recognised by the network (a Matrix
    /// transaction id) instead of posting twice.
    IdempotencyKey,
    "idempotency key",
    check_idempotency_key
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn examples_of_each_kind() {
        assert!(NetworkId::new("matrix").is_ok());
        assert!(NetworkId::new("tg-2").is_ok());
        assert!(NetworkId::new("Matrix").is_err());
        assert!(NetworkId::new("2tg").is_err());
        assert!(ConversationId::new("!opaque").is_ok());
        assert!(NetworkUserId::new("@bob:example.org").is_ok());
        assert!(RemoteIdentity::new("0xabc.addr.dm3.eth").is_ok());
        assert_eq!(
            NetworkMessageId::new("$a b"),
            Err(IdError::BadCharacter { kind: "network message id", found: ' ' })
        );
        assert_eq!(RemoteIdentity::new(""), Err(IdError::Empty { kind: "remote identity" }));
        assert!(IdempotencyKey::new("0x12ab_~.-Z").is_ok());
        assert!(IdempotencyKey::new("a/b").is_err());
        assert!(IdempotencyKey::new("a".repeat(129)).is_err());
        assert!(ConversationId::new("x".repeat(255)).is_ok());
        assert!(ConversationId::new("x".repeat(256)).is_err());
    }

    #[test]
    fn serde_validates() {
        let id: ConversationId = serde_json::from_str("\"!room\"").unwrap();
        assert_eq!(id.as_str(), "!room");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"!room\"");
        assert!(serde_json::from_str::<ConversationId>("\"bad\\u0000id\"").is_err());
        assert!(serde_json::from_str::<NetworkId>("\"UPPER\"").is_err());
    }

    proptest! {
        #[test]
        fn opaque_ids_accept_exactly_the_safe_strings(s in "\\PC{0,80}") {
            let valid = !s.is_empty()
                && s.len() <= MAX_OPAQUE_ID_BYTES
                && !s.chars().any(|c| c.is_whitespace() || c.is_control());
            match NetworkMessageId::new(s.clone()) {
                Ok(id) => {
                    prop_assert!(valid);
                    prop_assert_eq!(id.as_str(), s.as_str());
                    let json = serde_json::to_string(&id).unwrap();
                    prop_assert_eq!(serde_json::from_str::<NetworkMessageId>(&json).unwrap(), id);
                }
                Err(_) => prop_assert!(!valid),
            }
        }

        #[test]
        fn control_characters_are_refused_anywhere(prefix in "[a-z]{0,10}", c in any::<char>().prop_filter("control", |c| c.is_control()), suffix in "[a-z]{0,10}") {
            let s = format!("{prefix}{c}{suffix}");
            prop_assert_eq!(ConversationId::new(s), Err(IdError::BadCharacter { kind: "conversation id", found: c }));
        }

        #[test]
        fn idempotency_keys_are_url_unreserved(s in "[A-Za-z0-9._~-]{1,128}") {
            let key = IdempotencyKey::new(s.clone()).unwrap();
            prop_assert_eq!(key.to_string(), s);
        }

        #[test]
        fn idempotency_keys_refuse_reserved_characters(s in "[A-Za-z0-9]{0,5}[/?#%:@ !$&'()*+,;=][A-Za-z0-9]{0,5}") {
            prop_assert!(IdempotencyKey::new(s).is_err());
        }

        #[test]
        fn network_ids_parse_and_print_the_same(s in "[a-z][a-z0-9-]{0,31}") {
            let id = s.parse::<NetworkId>().unwrap();
            prop_assert_eq!(id.as_str(), s.as_str());
        }

        #[test]
        fn network_ids_refuse_anything_else(s in "\\PC{1,40}") {
            let valid = s.len() <= 32
                && s.starts_with(|c: char| c.is_ascii_lowercase())
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            prop_assert_eq!(NetworkId::new(s).is_ok(), valid);
        }
    }
}
