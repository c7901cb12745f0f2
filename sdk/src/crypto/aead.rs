//! IETF ChaCha20-Poly1305 over padded plaintext, as `dm3-lib-crypto` `encrypt` does it.
//!
//! The plaintext is padded with `sodium_pad` (ISO/IEC 7816-4: `0x80` then
//! zeros) to the next multiple of the block size strictly above its length, so
//! message lengths leak only in 2048-byte steps. The nonce is 12 bytes (not
//! XChaCha) and there is no associated data (docs/protocol.md P4, §6.2).

use chacha20poly1305::aead::{Aead as _, KeyInit as _};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use zeroize::Zeroizing;

use super::CryptoError;

/// The block size the reference pads asymmetric payloads to.
pub const PADDING_BLOCK: usize = 2048;

/// `sodium_pad`: the padded length is the next multiple of `block` above `len`.
pub fn pad(plaintext: &[u8], block: usize) -> Vec<u8> {
    let block = block.max(1);
    let padded_len = (plaintext.len() / block + 1) * block;
    let mut padded = Vec::with_capacity(padded_len);
    padded.extend_from_slice(plaintext);
    padded.push(0x80);
    padded.resize(padded_len, 0);
    padded
}

/// `sodium_unpad`: finds the `0x80` marker within the last block.
pub fn unpad(mut padded: Vec<u8>, block: usize) -> Result<Vec<u8>, CryptoError> {
    let block = block.max(1);
    if padded.len() < block {
        return Err(CryptoError::BadPadding);
    }
    let floor = padded.len() - block;
    let mut index = padded.len();
    while index > floor {
        index -= 1;
        match padded[index] {
            0x00 => continue,
            0x80 => {
                padded.truncate(index);
                return Ok(padded);
            }
            _ => return Err(CryptoError::BadPadding),
        }
    }
    Err(CryptoError::BadPadding)
}

/// Pads and encrypts; the output is `ciphertext ‖ tag`.
pub fn seal(key: &[u8; 32], nonce: &[u8; 12], plaintext: &[u8], block: usize) -> Vec<u8> {
    let padded = Zeroizing::new(pad(plaintext, block));
    let cipher = ChaCha20Poly1305::new(&Key::from(*key));
    // Encryption of an in-memory buffer cannot fail for sizes below 256 GiB.
    #[allow(clippy::expect_used)]
    cipher
        .encrypt(&Nonce::from(*nonce), padded.as_slice())
        .expect("ChaCha20-Poly1305 encryption of a bounded buffer")
}

/// Decrypts and removes the padding.
pub fn open(
    key: &[u8; 32],
    nonce: &[u8; 12],
    ciphertext: &[u8],
    block: usize,
) -> Result<Vec<u8>, CryptoError> {
    let cipher = ChaCha20Poly1305::new(&Key::from(*key));
    let padded =
        cipher.decrypt(&Nonce::from(*nonce), ciphertext).map_err(|_| CryptoError::WrongKeyOrTampered)?;
    unpad(padded, block)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn padding_lengths_match_the_reference_table() {
        for (len, padded) in [(0, 2048), (1, 2048), (2047, 2048), (2048, 4096), (2049, 4096), (5000, 6144)] {
            assert_eq!(pad(&vec![7u8; len], PADDING_BLOCK).len(), padded, "length {len}");
        }
        assert_eq!(pad(b"ab", 1), b"ab\x80");
    }

    #[test]
    fn unpad_rejects_missing_marker_and_short_input() {
        assert_eq!(unpad(vec![0; 2048], 2048), Err(CryptoError::BadPadding));
        assert_eq!(unpad(vec![0x80; 10], 2048), Err(CryptoError::BadPadding));
        assert_eq!(unpad(vec![1, 0x80, 0, 0], 4).unwrap(), vec![1]);
        assert_eq!(unpad(vec![1, 0x81, 0, 0], 4), Err(CryptoError::BadPadding));
    }

    #[test]
    fn tampering_is_detected() {
        let key = [9u8; 32];
        let nonce = [1u8; 12];
        let mut sealed = seal(&key, &nonce, b"hello", PADDING_BLOCK);
        assert_eq!(open(&key, &nonce, &sealed, PADDING_BLOCK).unwrap(), b"hello");
        sealed[3] ^= 1;
        assert_eq!(open(&key, &nonce, &sealed, PADDING_BLOCK), Err(CryptoError::WrongKeyOrTampered));
    }
}
