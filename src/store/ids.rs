//! The identifiers the store keys rows by, and how they are read back.
//!
//! Names and message hashes are the SDK's types ([`dm3::ens::EnsName`],
//! [`dm3::message::MessageHash`]): ENS normalization happens once, at the edge, before a name
//! reaches any table (or `Alice.eth` and `alice.eth` would be two accounts), and the store
//! takes only names that went through it. A message hash is stored as `0x` and 64 lowercase hex
//! digits, which is how both envelope formats write it (docs/protocol.md P1). Reading back, a value
//! is taken as it was written: a name that is not in normal form, or text that is not a hash,
//! is a corrupt row, never quietly another key.
//!
//! Keys the store does not type (job keys, conversations) are only checked for what would
//! corrupt them ([`check`]): empty values, whitespace and control characters, unbounded length.

use dm3::ens::EnsName;
use dm3::message::MessageHash;

use super::StoreError;

/// Why a value is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?}: {reason}")]
pub struct InvalidId {
    what: &'static str,
    value: String,
    reason: &'static str,
}

pub(super) fn check(
    what: &'static str,
    value: &str,
    max_len: usize,
    lowercase: bool,
) -> Result<(), InvalidId> {
    let fail = |reason| {
        Err(InvalidId {
            what,
            // Keep error messages bounded even for hostile input.
            value: value.chars().take(80).collect(),
            reason,
        })
    };
    if value.is_empty() {
        return fail("is empty");
    }
    if value.len() > max_len {
        return fail("is too long");
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return fail("contains whitespace or control characters");
    }
    if lowercase && value.bytes().any(|b| b.is_ascii_uppercase()) {
        return fail("has capital letters (is it normalized?)");
    }
    Ok(())
}

/// The name a row holds, as it was written.
pub(super) fn stored_name(text: &str) -> Result<EnsName, StoreError> {
    EnsName::from_normalized(text).map_err(|e| corrupt("name", text, e))
}

/// The message hash a row holds, as it was written.
pub(super) fn stored_hash(text: &str) -> Result<MessageHash, StoreError> {
    text.parse().map_err(|e| corrupt("message hash", text, e))
}

fn corrupt(what: &str, text: &str, error: impl std::fmt::Display) -> StoreError {
    let shown: String = text.chars().take(80).collect();
    StoreError::Corrupt(format!("stored {what} {shown:?}: {error}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_are_read_back_only_as_written() {
        assert_eq!(stored_name("alice.eth").unwrap().as_str(), "alice.eth");
        assert_eq!(stored_name("0xabc.addr.dm3.eth").unwrap().as_str(), "0xabc.addr.dm3.eth");
        for corrupt in ["", "Alice.eth", "a b.eth", &"a".repeat(256)] {
            assert!(matches!(stored_name(corrupt), Err(StoreError::Corrupt(_))), "{corrupt:.20}");
        }
    }

    #[test]
    fn hashes_are_read_back_only_as_written() {
        let hash = format!("0x{}", "ab".repeat(32));
        assert_eq!(stored_hash(&hash).unwrap().to_string(), hash);
        for corrupt in ["", "0x1234", &"x".repeat(257)] {
            assert!(matches!(stored_hash(corrupt), Err(StoreError::Corrupt(_))), "{corrupt:.20}");
        }
    }

    #[test]
    fn keys_are_bounded_and_printable() {
        assert!(check("key", "matrix:$e1", 16, false).is_ok());
        assert!(check("key", "", 16, false).is_err());
        assert!(check("key", "a b", 16, false).is_err());
        assert!(check("key", &"k".repeat(17), 16, false).is_err());
        assert!(check("key", "Key", 16, true).is_err());
    }
}
