//! The cryptographic primitives of `dm3-lib-crypto`, byte for byte (docs/protocol.md §6).
//!
//! - [`kx`]: libsodium `crypto_kx` key pairs and session keys (X25519 + BLAKE2b).
//! - [`aead`]: IETF ChaCha20-Poly1305 over ISO/IEC 7816-4 padded plaintext.
//! - [`asymmetric`]: the "x25519-chacha20-poly1305" scheme built from the two.
//! - [`signing`]: Ed25519 with libsodium's 64-byte secret keys.
//! - [`eth`]: secp256k1 wallets, EIP-191 `personal_sign` and address recovery.

pub mod aead;
pub mod asymmetric;
pub mod eth;
pub mod kx;
pub mod signing;

use crate::encoding::EncodingError;

/// Why a cryptographic operation failed, in the caller's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("malformed key or value: {0}")]
    Encoding(#[from] EncodingError),
    #[error("the key exchange produced an all-zero shared secret")]
    WeakSharedSecret,
    #[error("decryption failed: wrong key or tampered ciphertext")]
    WrongKeyOrTampered,
    #[error("the decrypted plaintext has no valid ISO/IEC 7816-4 padding")]
    BadPadding,
    #[error("the decrypted plaintext is not UTF-8")]
    NotUtf8,
    #[error("the encrypted payload is malformed: {0}")]
    MalformedPayload(&'static str),
    #[error("the secret key is malformed: {0}")]
    InvalidSecretKey(&'static str),
    #[error("the signature is malformed")]
    MalformedSignature,
}

/// Fills a fresh array with operating-system randomness.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator failing is not an input error and cannot be recovered
    // from; a key made of zeros would be far worse than stopping.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    bytes
}
