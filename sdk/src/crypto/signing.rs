//! Ed25519 as libsodium does it: detached signatures, 64-byte secrets (`seed ‖ pk`).
//!
//! Messages, envelope metadata and auth challenges are signed over the UTF-8
//! of the canonical string itself, not over a hash of it (docs/protocol.md P6).
//! Verification is strict (canonical `S`, no small-order keys), like
//! libsodium's `crypto_sign_verify_detached`.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use super::CryptoError;
use crate::encoding::{b64_decode, b64_decode_array, b64_encode};

/// An Ed25519 key pair.
#[derive(Clone)]
pub struct SigningKeyPair {
    key: SigningKey,
}

impl std::fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyPair")
            .field("public", &self.public_b64())
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl SigningKeyPair {
    /// `crypto_sign_seed_keypair`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(seed) }
    }

    /// A fresh random key pair.
    pub fn generate() -> Self {
        Self::from_seed(&Zeroizing::new(super::random_bytes()))
    }

    /// Parses libsodium's 64-byte secret. Unlike libsodium we refuse a public
    /// half that does not belong to the seed: such a key signs garbage.
    pub fn from_libsodium_secret(secret: &[u8; 64]) -> Result<Self, CryptoError> {
        SigningKey::from_keypair_bytes(secret)
            .map(|key| Self { key })
            .map_err(|_| CryptoError::InvalidSecretKey("the public half does not match the seed"))
    }

    /// Parses a base64 libsodium secret (88 characters).
    pub fn from_secret_b64(secret: &str) -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(b64_decode_array::<64>(secret)?);
        Self::from_libsodium_secret(&bytes)
    }

    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    pub fn public_b64(&self) -> String {
        b64_encode(&self.public())
    }

    /// libsodium's secret format, `seed ‖ pk`.
    pub fn libsodium_secret(&self) -> Zeroizing<[u8; 64]> {
        Zeroizing::new(self.key.to_keypair_bytes())
    }

    pub fn secret_b64(&self) -> Zeroizing<String> {
        Zeroizing::new(b64_encode(self.libsodium_secret().as_ref()))
    }

    /// `crypto_sign_detached`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// The reference's `sign(sk, str)`: base64 of the detached signature over UTF-8.
    pub fn sign_b64(&self, message: &str) -> String {
        b64_encode(&self.sign(message.as_bytes()))
    }
}

/// An Ed25519 public key, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyKey(VerifyingKey);

impl VerifyKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, CryptoError> {
        VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| CryptoError::InvalidSecretKey("not an Ed25519 public key"))
    }

    pub fn from_b64(text: &str) -> Result<Self, CryptoError> {
        Self::from_bytes(&b64_decode_array(text)?)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// `crypto_sign_verify_detached`.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.0.verify_strict(message, &Signature::from_bytes(signature)).is_ok()
    }

    /// The reference's `checkSignature(pk, str, sigB64)`. A malformed signature is
    /// an error; a well-formed one that does not verify is `Ok(false)`.
    pub fn verify_b64(&self, message: &str, signature_b64: &str) -> Result<bool, CryptoError> {
        let bytes = b64_decode(signature_b64)?;
        let signature: [u8; 64] = bytes.try_into().map_err(|_| CryptoError::MalformedSignature)?;
        Ok(self.verify(message.as_bytes(), &signature))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sign_and_verify() {
        let pair = SigningKeyPair::generate();
        let key = VerifyKey::from_bytes(&pair.public()).unwrap();
        let signature = pair.sign_b64("hello");
        assert_eq!(key.verify_b64("hello", &signature), Ok(true));
        assert_eq!(key.verify_b64("hellO", &signature), Ok(false));
        assert_eq!(key.verify_b64("hello", "AAAA"), Err(CryptoError::MalformedSignature));
    }

    #[test]
    fn libsodium_secret_round_trips_and_mismatch_is_refused() {
        let pair = SigningKeyPair::generate();
        let secret = pair.libsodium_secret();
        let again = SigningKeyPair::from_libsodium_secret(&secret).unwrap();
        assert_eq!(again.public(), pair.public());
        let mut wrong = *secret;
        wrong[40] ^= 1;
        assert!(SigningKeyPair::from_libsodium_secret(&wrong).is_err());
    }
}
