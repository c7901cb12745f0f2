//! A pickle (an Olm account, an Olm or Megolm session) as the store keeps it: secret bytes that
//! never print.
//!
//! The pickle holds every private key of a ghost device (identity, one-time and fallback
//! keys). The connector hands it to the service's [`crate::crypto::OlmStore`], which seals it
//! under the master key before it touches the database; between the two it must not reach a
//! log, so its `Debug` says only its length, and its bytes are wiped when dropped.

use std::fmt;

use zeroize::Zeroizing;

/// The serialized pickle of a vodozemac account or session (its JSON form, not encrypted: sealing is the
/// store's job, under the node's master key, not a second key of the connector's).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretPickle(Zeroizing<Vec<u8>>);

impl SecretPickle {
    /// The pickle whose bytes are `bytes` (as [`SecretPickle::expose`] gave them).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The bytes, to be sealed by the store and nothing else.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretPickle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretPickle([redacted; {} bytes])", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_byte() {
        let pickle = SecretPickle::from_bytes(b"{\"signing_key\":\"sekrit\"}".to_vec());
        let shown = format!("{pickle:?}");
        assert!(!shown.contains("sekrit"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
