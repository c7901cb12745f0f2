//! The hash helpers of `dm3-lib-shared` (docs/protocol.md §2.2).
//!
//! DM3 hashes *strings*: `sha256(str)` is SHA-256 over the UTF-8 bytes, written
//! as `0x` + lowercase hex. `hash_message` is ethers' EIP-191 hash, used for
//! profile signatures and the postmark's `messageHash` (P6).

use sha2::{Digest as _, Sha256};

use crate::encoding::hex_encode;

/// SHA-256 of raw bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// `sha256(str)` of the reference: `0x` + hex of SHA-256 over the UTF-8 of `text`.
pub fn sha256_hex(text: &str) -> String {
    hex_encode(&sha256(text.as_bytes()))
}

/// Keccak-256 of raw bytes.
pub fn keccak256(bytes: &[u8]) -> [u8; 32] {
    alloy_primitives::keccak256(bytes).0
}

/// ethers' `hashMessage`: keccak256 over `"\x19Ethereum Signed Message:\n" + len + message`,
/// where `len` is the decimal byte length of the message.
pub fn eip191_hash(message: &[u8]) -> [u8; 32] {
    alloy_primitives::eip191_hash_message(message).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_nonce_is_sha256_of_its_label() {
        assert_eq!(
            sha256_hex("dm3_default_nonce"),
            "0xa1b38837dd52e70a250ac2bf3e19f1599833e9d30662bf69a1c12e5747ed9f65"
        );
    }

    #[test]
    fn eip191_matches_its_definition() {
        let mut framed = b"\x19Ethereum Signed Message:\n5".to_vec();
        framed.extend_from_slice(b"hello");
        assert_eq!(eip191_hash(b"hello"), keccak256(&framed));
    }
}
