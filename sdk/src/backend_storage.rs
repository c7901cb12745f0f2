//! Client-side encryption for the backend storage API, the de-facto history store (§11.2).
//!
//! The backend is server-blind: the messenger encrypts everything it stores.
//! Contact names must also work as lookup keys, so they are encrypted
//! *deterministically* (`encryptSync`, P21): the user's X25519 private key is
//! used directly as the ChaCha20-Poly1305 key, with the fixed nonce
//! `sha256(ownEnsName)[0..12]` for every value and padding block 1. The nonce
//! is reused across values; that is the reference's design, reproduced here
//! for compatibility, not a choice to copy elsewhere. Envelope containers use
//! the ordinary randomized `encryptAsymmetric` to the user's own key.
//! Results are `btoa(stringify(payload))`: standard base64, used as URL path
//! segments, so they can contain `/` and `+`.

use serde_json::{Map, Value, json};

use crate::canonical;
use crate::crypto::CryptoError;
use crate::crypto::aead;
use crate::crypto::asymmetric::{EncryptedPayload, decrypt_to_string, encrypt};
use crate::crypto::kx::KxKeyPair;
use crate::encoding::{b64_decode, b64_encode, hex_decode_array, hex_encode};
use crate::hash::{sha256, sha256_hex};

/// `encryptSync` pads to a multiple of 1 byte: only the `0x80` marker is added.
pub const CONTACT_NAME_PADDING: usize = 1;

/// Why stored data could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("the stored value is not base64 of an encrypted payload: {0}")]
    Malformed(&'static str),
    #[error("decryption failed: not encrypted with this key, or tampered with")]
    WrongKey,
    #[error("the decrypted value has no valid padding")]
    BadPadding,
    #[error("the decrypted value is not UTF-8")]
    NotUtf8,
    #[error("the envelope container is not {{envelop, messageState}}")]
    NotAContainer,
    #[error("the key exchange failed: {0}")]
    Key(CryptoError),
}

impl From<CryptoError> for StorageError {
    fn from(error: CryptoError) -> Self {
        match error {
            CryptoError::WrongKeyOrTampered => Self::WrongKey,
            CryptoError::BadPadding => Self::BadPadding,
            CryptoError::NotUtf8 => Self::NotUtf8,
            CryptoError::Encoding(_) | CryptoError::MalformedPayload(_) => Self::Malformed("payload fields"),
            other => Self::Key(other),
        }
    }
}

/// The per-account nonce: the first 12 bytes of `sha256(ownEnsName)` (P21).
pub fn account_nonce(own_ens_name: &str) -> [u8; 12] {
    let digest = sha256(own_ens_name.as_bytes());
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&digest[..12]);
    nonce
}

/// `encrypt(ownSk, plaintext, accountNonce, 1)`: the `{ciphertext, nonce}` object.
pub fn encrypt_sync(own: &KxKeyPair, own_ens_name: &str, plaintext: &str) -> Value {
    let nonce = account_nonce(own_ens_name);
    let ciphertext = aead::seal(own.secret(), &nonce, plaintext.as_bytes(), CONTACT_NAME_PADDING);
    json!({"ciphertext": b64_encode(&ciphertext), "nonce": hex_encode(&nonce)})
}

/// The inverse of [`encrypt_sync`]; the nonce is read from the payload.
pub fn decrypt_sync(own: &KxKeyPair, payload: &Value) -> Result<String, StorageError> {
    let field =
        |name| payload.get(name).and_then(Value::as_str).ok_or(StorageError::Malformed("payload fields"));
    let nonce: [u8; 12] = hex_decode_array(field("nonce")?).map_err(|_| StorageError::Malformed("nonce"))?;
    let ciphertext = b64_decode(field("ciphertext")?).map_err(|_| StorageError::Malformed("ciphertext"))?;
    let plaintext = aead::open(own.secret(), &nonce, &ciphertext, CONTACT_NAME_PADDING)?;
    String::from_utf8(plaintext).map_err(|_| StorageError::NotUtf8)
}

/// `encryptedContactName`: `btoa(stringify(encryptSync(contactName)))`, the
/// same for the same contact, so the backend can look it up.
pub fn encrypt_contact_name(own: &KxKeyPair, own_ens_name: &str, contact_name: &str) -> String {
    b64_encode(canonical::stringify(&encrypt_sync(own, own_ens_name, contact_name)).as_bytes())
}

pub fn decrypt_contact_name(own: &KxKeyPair, encrypted: &str) -> Result<String, StorageError> {
    decrypt_sync(own, &unwrap_btoa(encrypted)?)
}

/// The backend's row id for a message: `sha256(ownEnsName + messageId)`, where
/// `messageId` is the envelope's `metadata.messageHash`.
pub fn storage_message_id(own_ens_name: &str, message_id: &str) -> String {
    sha256_hex(&format!("{own_ens_name}{message_id}"))
}

/// The messenger's `MessageState`, stored next to each envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    Created = 0,
    Signed = 1,
    Send = 2,
    Read = 3,
    FailedToSend = 4,
}

impl MessageState {
    fn from_number(number: u64) -> Option<Self> {
        [Self::Created, Self::Signed, Self::Send, Self::Read, Self::FailedToSend]
            .into_iter()
            .find(|s| *s as u64 == number)
    }
}

/// `encryptedEnvelopContainer`: `btoa(stringify(encryptAsymmetric(ownPk, stringify({envelop, messageState}))))`.
pub fn seal_envelope_container(
    own: &KxKeyPair,
    envelop: &Value,
    state: MessageState,
) -> Result<String, StorageError> {
    let mut container = Map::new();
    container.insert("envelop".into(), envelop.clone());
    container.insert("messageState".into(), Value::from(state as u64));
    let payload = encrypt(own.public(), canonical::stringify_object(&container).as_bytes())?;
    Ok(b64_encode(payload.to_canonical_string().as_bytes()))
}

/// The inverse of [`seal_envelope_container`]: the stored envelope object and its state.
pub fn open_envelope_container(
    own: &KxKeyPair,
    container: &str,
) -> Result<(Value, MessageState), StorageError> {
    let payload = EncryptedPayload::from_value(&unwrap_btoa(container)?)?;
    let plaintext = decrypt_to_string(own, &payload)?;
    let mut value: Value = serde_json::from_str(&plaintext).map_err(|_| StorageError::NotAContainer)?;
    let state = value.get("messageState").and_then(Value::as_u64).and_then(MessageState::from_number);
    match (value.get_mut("envelop").map(Value::take), state) {
        (Some(envelop @ Value::Object(_)), Some(state)) => Ok((envelop, state)),
        _ => Err(StorageError::NotAContainer),
    }
}

/// `JSON.parse(atob(text))`.
fn unwrap_btoa(text: &str) -> Result<Value, StorageError> {
    let bytes = b64_decode(text).map_err(|_| StorageError::Malformed("not base64"))?;
    serde_json::from_slice(&bytes).map_err(|_| StorageError::Malformed("not JSON"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn contact_names_are_deterministic_and_round_trip() {
        let own = KxKeyPair::generate();
        let first = encrypt_contact_name(&own, "alice.eth", "bob.eth");
        assert_eq!(first, encrypt_contact_name(&own, "alice.eth", "bob.eth"));
        assert_ne!(first, encrypt_contact_name(&own, "alice2.eth", "bob.eth"));
        assert_eq!(decrypt_contact_name(&own, &first).unwrap(), "bob.eth");
        assert_eq!(decrypt_contact_name(&KxKeyPair::generate(), &first), Err(StorageError::WrongKey));
        assert!(matches!(decrypt_contact_name(&own, "!!"), Err(StorageError::Malformed(_))));
    }

    #[test]
    fn envelope_containers_round_trip() {
        let own = KxKeyPair::generate();
        let envelop = json!({"message": {"x": 1}, "metadata": {}});
        let sealed = seal_envelope_container(&own, &envelop, MessageState::Send).unwrap();
        assert_eq!(open_envelope_container(&own, &sealed).unwrap(), (envelop, MessageState::Send));
        assert_eq!(open_envelope_container(&KxKeyPair::generate(), &sealed), Err(StorageError::WrongKey));
        let not_container = b64_encode(
            encrypt(own.public(), b"{\"messageState\":9}").unwrap().to_canonical_string().as_bytes(),
        );
        assert_eq!(open_envelope_container(&own, &not_container), Err(StorageError::NotAContainer));
    }
}
