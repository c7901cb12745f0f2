//! Validated identifiers the store keys rows by: names and message hashes.
//!
//! The store does not normalize: ENS normalization (ENSIP-15) is the protocol library's job
//! and must happen once, before a name reaches any table, or `Alice.eth` and `alice.eth` would
//! be two accounts. What the store does enforce is what would corrupt its keys: empty values,
//! whitespace and control characters, capital ASCII letters (a sign that normalization was
//! skipped), and unbounded length.

use std::fmt;

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

/// A normalized ENS name (receiver, sender or account).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnsName(String);

impl EnsName {
    /// Longest name accepted (DNS's limit for a whole name).
    pub const MAX_LEN: usize = 255;

    /// Accepts an already normalized name.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidId> {
        let name = name.into();
        check("name", &name, Self::MAX_LEN, true)?;
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message hash as it appears in `metadata.messageHash` (or the older
/// `encryptedMessageHash`, docs/protocol.md P1): `0x` and 64 lowercase hex digits in practice.
/// The store only bounds it, so that both formats and future ones fit; it is compared
/// byte for byte, as the reference DS does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageHash(String);

impl MessageHash {
    pub const MAX_LEN: usize = 256;

    pub fn new(hash: impl Into<String>) -> Result<Self, InvalidId> {
        let hash = hash.into();
        check("message hash", &hash, Self::MAX_LEN, false)?;
        Ok(Self(hash))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_look_normalized() {
        assert!(EnsName::new("alice.eth").is_ok());
        assert!(EnsName::new("0xabc.addr.dm3.eth").is_ok());
        assert!(EnsName::new("").is_err());
        assert!(EnsName::new("Alice.eth").is_err());
        assert!(EnsName::new("a b.eth").is_err());
        assert!(EnsName::new("a".repeat(256)).is_err());
    }

    #[test]
    fn hashes_are_bounded() {
        assert!(MessageHash::new(format!("0x{}", "ab".repeat(32))).is_ok());
        assert!(MessageHash::new("").is_err());
        assert!(MessageHash::new("x".repeat(257)).is_err());
    }
}
