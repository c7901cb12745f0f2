//! EIP-137 `namehash` and `labelhash`, and the [`EnsNode`] they produce.
//!
//! ethers' `namehash` normalizes with ENSIP-15 and then hashes the labels' UTF-8
//! bytes (docs/protocol.md §2.2). Taking an [`EnsName`] makes the normalization step
//! impossible to forget; the hashing itself never fails.

use std::fmt;
use std::str::FromStr;

use super::EnsName;
use crate::encoding::{EncodingError, hex_decode_array, hex_encode};
use crate::hash::keccak256;

/// The 32-byte node of a name, as resolvers and the registry key records by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnsNode([u8; 32]);

impl EnsNode {
    /// The root node, `0x00…00`.
    pub const ROOT: EnsNode = EnsNode([0; 32]);

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses `0x` + 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, EncodingError> {
        hex_decode_array(text).map(Self)
    }

    /// `0x` + 64 lowercase hex digits, as ethers prints it.
    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    /// The node of `label.<self>`.
    pub fn child(&self, label: &str) -> EnsNode {
        let mut preimage = [0u8; 64];
        preimage[..32].copy_from_slice(&self.0);
        preimage[32..].copy_from_slice(&labelhash(label));
        EnsNode(keccak256(&preimage))
    }
}

impl FromStr for EnsNode {
    type Err = EncodingError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_hex(text)
    }
}

impl fmt::Display for EnsNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for EnsNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnsNode({})", self.to_hex())
    }
}

/// `keccak256(utf8(label))`.
pub fn labelhash(label: &str) -> [u8; 32] {
    keccak256(label.as_bytes())
}

/// EIP-137: `node(root) = 0`, `node(label.parent) = keccak256(node(parent) ‖ labelhash(label))`.
pub fn namehash(name: &EnsName) -> EnsNode {
    name.labels().rev().fold(EnsNode::ROOT, |node, label| node.child(label))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn hash(name: &str) -> String {
        namehash(&EnsName::parse(name).unwrap()).to_hex()
    }

    #[test]
    fn known_namehashes() {
        assert_eq!(hash(""), format!("0x{}", "0".repeat(64)));
        assert_eq!(hash("eth"), "0x93cdeb708b7545dc668eb9280176169d1c33cfd8ed6f04690a0bcc88a93fc4ae");
        assert_eq!(hash("foo.eth"), "0xde9b09fd7c5f901e23a3f19fecc54828e9c848539801e86591bd9801b019f84f");
        assert_eq!(hash("Foo.ETH"), hash("foo.eth"));
    }

    #[test]
    fn labelhash_of_eth() {
        assert_eq!(
            hex_encode(&labelhash("eth")),
            "0x4f5b812789fc606be1b3b16908db13fc7a9adf7ca72641f84d75b47069d3d7f0"
        );
    }

    #[test]
    fn node_hex_round_trips() {
        let node = EnsNode::from_hex(&hash("foo.eth")).unwrap();
        assert_eq!(node.to_string(), hash("foo.eth"));
        assert!(EnsNode::from_hex("0x1234").is_err());
    }
}
