//! Deriving a user's DM3 keys from their wallet (docs/protocol.md §3.1, P7).
//!
//! The wallet signs a fixed SIWE-like text that ends in a nonce; the
//! *signature string* (`0x` + 130 lowercase hex digits) is hashed with SHA-256
//! into the "storage key", a 32-byte seed for both the X25519 and the Ed25519
//! key pairs. Different nonces, and so different apps, give different keys.

use alloy_primitives::Address;
use zeroize::Zeroizing;

use crate::crypto::eth::{Wallet, checksum};
use crate::crypto::kx::KxKeyPair;
use crate::crypto::signing::SigningKeyPair;
use crate::encoding::b64_encode;
use crate::hash::sha256;

/// `sha256("dm3_default_nonce")`, the nonce `createProfile` uses.
pub const DEFAULT_NONCE: &str = "0xa1b38837dd52e70a250ac2bf3e19f1599833e9d30662bf69a1c12e5747ed9f65";

/// The text a wallet signs to derive its DM3 keys.
pub fn storage_key_creation_message(address: &Address, nonce: &str) -> String {
    format!(
        "dm3.chat wants you to sign in with your Ethereum account:\n{}\n\n\
         Connect the DM3 MESSENGER with your wallet. Keys for secure communication are derived from this signature.\n\n\
         (There is no paid transaction initiated. The signature is used off-chain only.)\n\n\
         URI: https://dm3.chat\nVersion: 1\nNonce: {nonce}",
        checksum(address)
    )
}

/// `createStorageKey`: SHA-256 over the UTF-8 of the signature *string*.
pub fn storage_key_from_signature(signature: &str) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(sha256(signature.as_bytes()))
}

/// A user's DM3 key pairs.
#[derive(Debug, Clone)]
pub struct ProfileKeys {
    pub encryption: KxKeyPair,
    pub signing: SigningKeyPair,
}

impl ProfileKeys {
    /// `createProfileKeys` from a 32-byte seed: one seed, two key pairs.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self { encryption: KxKeyPair::from_seed(seed), signing: SigningKeyPair::from_seed(seed) }
    }

    /// Keys from a wallet signature string over the storage-key message.
    pub fn from_signature(signature: &str) -> Self {
        Self::from_seed(&storage_key_from_signature(signature))
    }

    /// The full reference derivation: sign the storage-key message, hash, split.
    pub fn from_wallet(wallet: &Wallet, nonce: &str) -> Self {
        let message = storage_key_creation_message(&wallet.address(), nonce);
        Self::from_signature(&wallet.personal_sign(message.as_bytes()).to_hex())
    }

    /// The JSON shape of the `dm3 keys` command.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "encryption": {
                "publicKey": self.encryption.public_b64(),
                "privateKey": *self.encryption.secret_b64(),
            },
            "signing": {
                "publicKey": self.signing.public_b64(),
                "privateKey": *self.signing.secret_b64(),
            },
        })
    }
}

/// base64 of a storage key, as `storageKey` is printed.
pub fn storage_key_b64(key: &[u8; 32]) -> String {
    b64_encode(key)
}
