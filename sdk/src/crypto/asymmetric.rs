//! The "x25519-chacha20-poly1305" scheme of `encryptAsymmetric` / `decryptAsymmetric`.
//!
//! The sender makes a fresh ephemeral kx key pair, takes the *client* `tx`
//! session key against the receiver's public key, and seals with a random
//! 12-byte nonce. The receiver runs the *server* side and reads with its `rx`
//! (docs/protocol.md §6.1). On the wire the result is the canonical JSON string
//! `{"ciphertext":…,"ephemPublicKey":…,"nonce":…}` (P5).

use serde_json::{Map, Value};

use super::aead::{self, PADDING_BLOCK};
use super::kx::KxKeyPair;
use super::{CryptoError, random_bytes};
use crate::canonical;
use crate::encoding::{b64_decode, b64_decode_array, b64_encode, hex_decode_array, hex_encode};

/// An encrypted payload as the reference serializes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedPayload {
    /// base64 of `ciphertext ‖ tag`.
    pub ciphertext: String,
    /// base64 of the sender's ephemeral X25519 public key.
    pub ephem_public_key: String,
    /// `0x` + 24 hex digits.
    pub nonce: String,
}

impl EncryptedPayload {
    /// The JSON object form.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("ciphertext".into(), Value::String(self.ciphertext.clone()));
        map.insert("ephemPublicKey".into(), Value::String(self.ephem_public_key.clone()));
        map.insert("nonce".into(), Value::String(self.nonce.clone()));
        Value::Object(map)
    }

    /// The canonical string form that travels inside envelopes.
    pub fn to_canonical_string(&self) -> String {
        canonical::stringify(&self.to_value())
    }

    /// Reads the object form; other fields are ignored, as the reference does.
    pub fn from_value(value: &Value) -> Result<Self, CryptoError> {
        let field = |name: &'static str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(CryptoError::MalformedPayload(name))
        };
        Ok(Self {
            ciphertext: field("ciphertext")?,
            ephem_public_key: field("ephemPublicKey")?,
            nonce: field("nonce")?,
        })
    }

    /// Parses the string form (`JSON.parse` of an envelope field).
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let value: Value =
            serde_json::from_str(text).map_err(|_| CryptoError::MalformedPayload("not JSON"))?;
        Self::from_value(&value)
    }
}

/// Encrypts `plaintext` for `receiver` with fresh randomness.
pub fn encrypt(receiver: &[u8; 32], plaintext: &[u8]) -> Result<EncryptedPayload, CryptoError> {
    encrypt_with(receiver, &KxKeyPair::generate(), &random_bytes(), plaintext)
}

/// Encrypts with a given ephemeral key pair and nonce; for reproducible vectors only.
pub fn encrypt_with(
    receiver: &[u8; 32],
    ephemeral: &KxKeyPair,
    nonce: &[u8; 12],
    plaintext: &[u8],
) -> Result<EncryptedPayload, CryptoError> {
    let keys = ephemeral.client_session_keys(receiver)?;
    let ciphertext = aead::seal(&keys.tx, nonce, plaintext, PADDING_BLOCK);
    Ok(EncryptedPayload {
        ciphertext: b64_encode(&ciphertext),
        ephem_public_key: ephemeral.public_b64(),
        nonce: hex_encode(nonce),
    })
}

/// Decrypts a payload addressed to `own`.
pub fn decrypt(own: &KxKeyPair, payload: &EncryptedPayload) -> Result<Vec<u8>, CryptoError> {
    let ephemeral: [u8; 32] = b64_decode_array(&payload.ephem_public_key)?;
    let nonce: [u8; 12] = hex_decode_array(&payload.nonce)?;
    let ciphertext = b64_decode(&payload.ciphertext)?;
    let keys = own.server_session_keys(&ephemeral)?;
    aead::open(&keys.rx, &nonce, &ciphertext, PADDING_BLOCK)
}

/// Decrypts a payload and decodes it as UTF-8 text, as the reference does.
pub fn decrypt_to_string(own: &KxKeyPair, payload: &EncryptedPayload) -> Result<String, CryptoError> {
    String::from_utf8(decrypt(own, payload)?).map_err(|_| CryptoError::NotUtf8)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let receiver = KxKeyPair::generate();
        let payload = encrypt(receiver.public(), "grüße".as_bytes()).unwrap();
        let parsed = EncryptedPayload::parse(&payload.to_canonical_string()).unwrap();
        assert_eq!(decrypt_to_string(&receiver, &parsed).unwrap(), "grüße");
        let stranger = KxKeyPair::generate();
        assert_eq!(decrypt(&stranger, &parsed), Err(CryptoError::WrongKeyOrTampered));
    }

    #[test]
    fn malformed_payloads_are_errors() {
        let receiver = KxKeyPair::generate();
        assert!(EncryptedPayload::parse("[]").is_err());
        let bad_nonce = EncryptedPayload {
            ciphertext: "AAAA".into(),
            ephem_public_key: receiver.public_b64(),
            nonce: "0x123".into(),
        };
        assert!(decrypt(&receiver, &bad_nonce).is_err());
    }
}
