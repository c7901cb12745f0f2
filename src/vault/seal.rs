//! The sealed-blob format: ChaCha20-Poly1305 under the master key, bound to a purpose label.
//!
//! Layout (all binary, 17 bytes of header):
//!
//! ```text
//! 0        format version, 1
//! 1..5     master-key version, u32 big-endian
//! 5..17    random 96-bit nonce
//! 17..     ciphertext ‖ 16-byte Poly1305 tag
//! ```
//!
//! Why:
//! - A random nonce per seal: the same key seals many secrets over years; a counter would
//!   need state that survives restores from backup. 2^-32 collision risk is reached only after
//!   about 2^32 seals under one key, far beyond what a node does before rotation.
//! - The key version lets a future keyring pick the right key and makes "sealed under another
//!   key" a precise error rather than a generic failure.
//! - The associated data binds the header and a caller-chosen label (the purpose, e.g.
//!   `node-keys`, or later `identity:<name>`): a blob sealed for one purpose cannot be moved
//!   into another slot (say, one user's keys swapped for another's) and still open.
//! - A wrong key and a modified blob are indistinguishable by design (that is what an AEAD
//!   gives); the error says both.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};

use super::{MasterKey, SecretBytes};

const FORMAT_V1: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Domain separation: these bytes start the associated data of every seal.
const AAD_DOMAIN: &[u8] = b"dm3-bridge sealed secret v1\0";

/// Why a blob could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed data is truncated ({0} bytes)")]
    Truncated(usize),
    #[error("sealed data has unknown format version {0}")]
    UnknownFormat(u8),
    #[error("sealed data needs master key version {found}, but the key given is version {have}")]
    KeyVersion { found: u32, have: u32 },
    #[error("the master key does not open the sealed data (wrong key, or the data was modified)")]
    WrongKeyOrTampered,
    #[error("the operating system's random generator failed")]
    Random,
    #[error("encryption failed")]
    Encrypt,
}

impl MasterKey {
    /// Seals `plaintext` for the purpose `label`.
    pub fn seal(&self, label: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut header = [0u8; HEADER_LEN];
        header[0] = FORMAT_V1;
        header[1..5].copy_from_slice(&self.version().to_be_bytes());
        getrandom::fill(&mut header[5..HEADER_LEN]).map_err(|_| SealError::Random)?;
        let aad = associated_data(&header, label);
        let ciphertext = cipher(self)
            .encrypt(&nonce(&header), Payload { msg: plaintext, aad: &aad })
            .map_err(|_| SealError::Encrypt)?;
        let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens a blob sealed for `label`.
    pub fn open(&self, label: &str, sealed: &[u8]) -> Result<SecretBytes, SealError> {
        if sealed.len() < HEADER_LEN + TAG_LEN {
            return Err(SealError::Truncated(sealed.len()));
        }
        let (header, ciphertext) = sealed.split_at(HEADER_LEN);
        if header[0] != FORMAT_V1 {
            return Err(SealError::UnknownFormat(header[0]));
        }
        let found = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        if found != self.version() {
            return Err(SealError::KeyVersion { found, have: self.version() });
        }
        let aad = associated_data(header, label);
        let plaintext = cipher(self)
            .decrypt(&nonce(header), Payload { msg: ciphertext, aad: &aad })
            .map_err(|_| SealError::WrongKeyOrTampered)?;
        Ok(SecretBytes::new(plaintext))
    }
}

fn cipher(key: &MasterKey) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(&(*key.bytes()).into())
}

fn nonce(header: &[u8]) -> Nonce {
    let mut bytes = [0u8; NONCE_LEN];
    bytes.copy_from_slice(&header[5..HEADER_LEN]);
    bytes.into()
}

fn associated_data(header: &[u8], label: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + label.len() + 1 + HEADER_LEN);
    aad.extend_from_slice(AAD_DOMAIN);
    aad.extend_from_slice(label.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&header[..5]);
    aad
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn round_trip() {
        let key = MasterKey::generate().unwrap();
        let sealed = key.seal("purpose", b"secret").unwrap();
        assert_eq!(key.open("purpose", &sealed).unwrap().expose(), b"secret");
    }

    #[test]
    fn same_plaintext_seals_differently() {
        let key = MasterKey::generate().unwrap();
        assert_ne!(key.seal("p", b"secret").unwrap(), key.seal("p", b"secret").unwrap());
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let key = MasterKey::generate().unwrap();
        let sealed = key.seal("purpose", b"secret").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(key.open("purpose", &bad).is_err(), "flip at byte {i} opened");
        }
    }

    #[test]
    fn label_binds_the_purpose() {
        let key = MasterKey::generate().unwrap();
        let sealed = key.seal("identity:alice.eth", b"alice keys").unwrap();
        assert_eq!(key.open("identity:bob.eth", &sealed).unwrap_err(), SealError::WrongKeyOrTampered);
    }

    #[test]
    fn wrong_key_is_an_error_not_garbage() {
        let key = MasterKey::generate().unwrap();
        let other = MasterKey::generate().unwrap();
        let sealed = key.seal("p", b"secret").unwrap();
        assert_eq!(other.open("p", &sealed).unwrap_err(), SealError::WrongKeyOrTampered);
    }

    #[test]
    fn truncated_and_unknown_formats_are_named() {
        let key = MasterKey::generate().unwrap();
        assert_eq!(key.open("p", &[1, 2, 3]).unwrap_err(), SealError::Truncated(3));
        let mut sealed = key.seal("p", b"x").unwrap();
        sealed[0] = 9;
        assert_eq!(key.open("p", &sealed).unwrap_err(), SealError::UnknownFormat(9));
        let mut sealed = key.seal("p", b"x").unwrap();
        sealed[4] = 2;
        assert_eq!(key.open("p", &sealed).unwrap_err(), SealError::KeyVersion { found: 2, have: 1 });
    }
}
