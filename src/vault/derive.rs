//! Secrets derived from the master key: the same input always gives the same secret, so a
//! secret that was never stored can be made again whenever it is needed.
//!
//! The on-demand identities use this (docs/names.md, "Reachable before first use"): the wallet
//! of a Matrix user who never used the bridge is derived from the master key and the identity's
//! name, so the gateway can answer a lookup of that name without writing anything, and the
//! first message to it stores the very wallet the lookup published.
//!
//! HMAC-SHA-256 keyed by the master key over the purpose's length (8 bytes, big-endian), the
//! purpose and the input: a pseudo-random function, so without the master key the derived
//! secrets cannot be told from random or computed from one another, and the length prefix
//! keeps every (purpose, input) pair apart, whatever bytes either holds.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::MasterKey;

impl MasterKey {
    /// The 32-byte secret for `purpose` and `input`.
    pub fn derive(&self, purpose: &str, input: &[u8]) -> Zeroizing<[u8; 32]> {
        // `new_from_slice` refuses no key length for HMAC; the fallback is unreachable and
        // still yields a keyed, if different, function rather than a panic.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.bytes())
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        mac.update(&u64::try_from(purpose.len()).unwrap_or(u64::MAX).to_be_bytes());
        mac.update(purpose.as_bytes());
        mac.update(input);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_same_input_gives_the_same_secret_and_nothing_else_does() {
        let master = MasterKey::generate().unwrap();
        let a = master.derive("p", b"alice");
        assert_eq!(*a, *master.derive("p", b"alice"));
        assert_ne!(*a, *master.derive("p", b"alicf"));
        assert_ne!(*a, *master.derive("q", b"alice"));
        // The length prefix separates purpose and input: ("p", "\0x") is not ("p\0", "x").
        assert_ne!(*master.derive("p", b"\0x"), *master.derive("p\0", b"x"));
        assert_ne!(*a, *MasterKey::generate().unwrap().derive("p", b"alice"));
    }
}
