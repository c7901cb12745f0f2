//! The postmark: the DS's signed, encrypted receipt of when it received an envelope (§8).
//!
//! The DS builds `{messageHash, incommingTimestamp}` (the typo is wire format,
//! P8) where `messageHash` is the EIP-191 keccak hash of the JSON-*quoted*
//! envelope `message` string (P3, P6), not the sha256 the spec names. It signs
//! with Ed25519 over the ASCII text of `sha256(stringify(p))`, the 66-character
//! hex string, not the 32 raw bytes (P6). Then it encrypts
//! `stringify({...p, signature})` to the receiver's X25519 key, and the result
//! goes into `envelope.postmark`.
//!
//! The messenger skips any envelope whose postmark it cannot decrypt and
//! orders messages by `incommingTimestamp`, so a relay must always add one.
//! Nobody verifies postmarks today; [`Postmark::verify`] does what §8
//! "Postmark verification" describes.

use serde_json::{Map, Number, Value};

use crate::canonical;
use crate::crypto::CryptoError;
use crate::crypto::asymmetric::{EncryptedPayload, decrypt_to_string, encrypt_with};
use crate::crypto::kx::KxKeyPair;
use crate::crypto::signing::{SigningKeyPair, VerifyKey};
use crate::encoding::{hex_decode_array, hex_encode};
use crate::envelope::{DeliveryInformation, Envelope, Ephemeral};
use crate::hash::{eip191_hash, sha256_hex};

/// Why a postmark could not be made, opened or trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostmarkError {
    #[error("the envelope has no postmark")]
    Missing,
    #[error("the encrypted postmark is malformed: {0}")]
    MalformedPayload(String),
    #[error("decryption failed: not encrypted to this key, or tampered with")]
    WrongKey,
    #[error("the ephemeral or receiver key is a small-order point")]
    WeakKey,
    #[error("the decrypted postmark has no valid padding")]
    BadPadding,
    #[error("the decrypted postmark is not UTF-8")]
    NotUtf8,
    #[error("postmark field `{0}` is missing or malformed")]
    Field(&'static str),
    #[error("the postmark's messageHash does not match the envelope's message")]
    HashMismatch,
    #[error("the postmark signature is not a base64 Ed25519 signature")]
    MalformedSignature,
    #[error("the postmark signature does not verify with the delivery service's key")]
    BadSignature,
}

impl From<CryptoError> for PostmarkError {
    fn from(error: CryptoError) -> Self {
        match error {
            CryptoError::WrongKeyOrTampered => Self::WrongKey,
            CryptoError::WeakSharedSecret => Self::WeakKey,
            CryptoError::BadPadding => Self::BadPadding,
            CryptoError::NotUtf8 => Self::NotUtf8,
            other => Self::MalformedPayload(other.to_string()),
        }
    }
}

/// A decrypted, signed postmark, kept as its JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct Postmark {
    raw: Map<String, Value>,
    message_hash: [u8; 32],
}

impl Postmark {
    /// `hashMessage(stringify(envelope.message))`: EIP-191 over the quoted string (P3, P6).
    pub fn message_hash_of(envelope_message: &str) -> [u8; 32] {
        eip191_hash(canonical::stringify_str(envelope_message).as_bytes())
    }

    /// `addPostmark`'s plaintext for `envelope`, received at `incomming_timestamp_ms`
    /// (milliseconds since the epoch), signed with the DS's Ed25519 key.
    pub fn create(envelope: &Envelope, incomming_timestamp_ms: u64, ds_signing: &SigningKeyPair) -> Self {
        let message_hash = Self::message_hash_of(envelope.message());
        let mut raw = Map::new();
        raw.insert("messageHash".into(), Value::String(hex_encode(&message_hash)));
        raw.insert("incommingTimestamp".into(), Value::Number(Number::from(incomming_timestamp_ms)));
        let mut postmark = Self { raw, message_hash };
        let signature = ds_signing.sign_b64(&postmark.signed_text());
        postmark.raw.insert("signature".into(), Value::String(signature));
        postmark
    }

    /// Validates a decrypted postmark object; unknown fields are kept.
    pub fn from_value(value: Value) -> Result<Self, PostmarkError> {
        let Value::Object(raw) = value else {
            return Err(PostmarkError::Field("postmark"));
        };
        let message_hash = raw
            .get("messageHash")
            .and_then(Value::as_str)
            .and_then(|text| hex_decode_array::<32>(text).ok())
            .ok_or(PostmarkError::Field("messageHash"))?;
        if !raw.get("incommingTimestamp").is_some_and(Value::is_number) {
            return Err(PostmarkError::Field("incommingTimestamp"));
        }
        if !raw.get("signature").is_some_and(Value::is_string) {
            return Err(PostmarkError::Field("signature"));
        }
        Ok(Self { raw, message_hash })
    }

    /// Parses the decrypted plaintext.
    pub fn parse(text: &str) -> Result<Self, PostmarkError> {
        let value = serde_json::from_str(text).map_err(|_| PostmarkError::Field("postmark"))?;
        Self::from_value(value)
    }

    /// Decrypts `envelope.postmark` (the string form) with the receiver's key.
    pub fn open(encrypted: &str, receiver: &KxKeyPair) -> Result<Self, PostmarkError> {
        let payload = EncryptedPayload::parse(encrypted)?;
        Self::parse(&decrypt_to_string(receiver, &payload)?)
    }

    /// Decrypts the postmark of a stored or delivered envelope.
    pub fn open_envelope(envelope: &Envelope, receiver: &KxKeyPair) -> Result<Self, PostmarkError> {
        Self::open(envelope.postmark().ok_or(PostmarkError::Missing)?, receiver)
    }

    /// `stringify(EncryptedPayload)` for the receiver, with fresh randomness.
    pub fn seal(&self, receiver_encryption_pk: &[u8; 32]) -> Result<String, PostmarkError> {
        self.seal_with(receiver_encryption_pk, &Ephemeral::random())
    }

    /// [`seal`](Self::seal) with injected randomness, for reproducible tests.
    pub fn seal_with(
        &self,
        receiver_encryption_pk: &[u8; 32],
        ephemeral: &Ephemeral,
    ) -> Result<String, PostmarkError> {
        let payload = encrypt_with(
            receiver_encryption_pk,
            &ephemeral.key_pair,
            &ephemeral.nonce,
            self.canonical().as_bytes(),
        )?;
        Ok(payload.to_canonical_string())
    }

    /// The text the DS signs: `sha256(stringify({incommingTimestamp, messageHash}))`
    /// as `0x`-hex (P6). Extra fields are not covered, as in the reference.
    pub fn signed_text(&self) -> String {
        let mut signed = Map::new();
        for field in ["incommingTimestamp", "messageHash"] {
            if let Some(value) = self.raw.get(field) {
                signed.insert(field.into(), value.clone());
            }
        }
        sha256_hex(&canonical::stringify_object(&signed))
    }

    /// The checks no client makes today (§8): the postmark belongs to this
    /// envelope's ciphertext, and the DS signed it.
    pub fn verify(&self, envelope: &Envelope, ds_signing_key: &VerifyKey) -> Result<(), PostmarkError> {
        if self.message_hash != Self::message_hash_of(envelope.message()) {
            return Err(PostmarkError::HashMismatch);
        }
        match ds_signing_key.verify_b64(&self.signed_text(), self.signature()) {
            Ok(true) => Ok(()),
            Ok(false) => Err(PostmarkError::BadSignature),
            Err(_) => Err(PostmarkError::MalformedSignature),
        }
    }

    /// The plaintext that is encrypted: `{"incommingTimestamp":…,"messageHash":…,"signature":…}`.
    pub fn canonical(&self) -> String {
        canonical::stringify_object(&self.raw)
    }

    crate::raw_json::raw_json_object!();

    pub fn message_hash(&self) -> &[u8; 32] {
        &self.message_hash
    }

    /// When the DS received the envelope, in milliseconds; the messenger sorts by it.
    pub fn incomming_timestamp(&self) -> f64 {
        self.raw.get("incommingTimestamp").and_then(Value::as_f64).unwrap_or_default()
    }

    pub fn signature(&self) -> &str {
        self.raw.get("signature").and_then(Value::as_str).unwrap_or_default()
    }
}

/// The whole DS step (§8 steps 7–8): postmark `envelope` for the receiver and
/// return the form to store and deliver, with the decrypted delivery information.
pub fn stamp_envelope(
    envelope: &Envelope,
    delivery_information: &DeliveryInformation,
    receiver_encryption_pk: &[u8; 32],
    ds_signing: &SigningKeyPair,
    incomming_timestamp_ms: u64,
) -> Result<Envelope, PostmarkError> {
    let postmark =
        Postmark::create(envelope, incomming_timestamp_ms, ds_signing).seal(receiver_encryption_pk)?;
    Ok(envelope.to_stored(delivery_information, &postmark))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn envelope(message: &str) -> Envelope {
        Envelope::from_value(json!({
            "message": message,
            "metadata": {"version": "v1", "signature": "s", "deliveryInformation": "d",
                         "messageHash": "0x305bd53275b584c77fa27ac507e6abeee91adedcc8405aca7d9da97616947dd0"},
        }))
        .unwrap()
    }

    #[test]
    fn stamped_envelope_carries_a_verifiable_postmark() {
        let ds = SigningKeyPair::generate();
        let bob = KxKeyPair::generate();
        let sent = envelope("{\"x\":1}");
        let stored =
            stamp_envelope(&sent, &DeliveryInformation::new("b", "a"), bob.public(), &ds, 42).unwrap();
        let postmark = Postmark::open_envelope(&stored, &bob).unwrap();
        assert_eq!(postmark.incomming_timestamp(), 42.0);
        let ds_key = VerifyKey::from_bytes(&ds.public()).unwrap();
        assert_eq!(postmark.verify(&stored, &ds_key), Ok(()));
        assert_eq!(postmark.verify(&envelope("other"), &ds_key), Err(PostmarkError::HashMismatch));
        let stranger = VerifyKey::from_bytes(&SigningKeyPair::generate().public()).unwrap();
        assert_eq!(postmark.verify(&stored, &stranger), Err(PostmarkError::BadSignature));
        assert_eq!(Postmark::open_envelope(&stored, &KxKeyPair::generate()), Err(PostmarkError::WrongKey));
        assert_eq!(Postmark::open_envelope(&sent, &bob), Err(PostmarkError::Missing));
    }

    #[test]
    fn a_changed_timestamp_breaks_the_signature() {
        let ds = SigningKeyPair::generate();
        let sent = envelope("m");
        let mut value = Postmark::create(&sent, 1, &ds).to_value();
        value["incommingTimestamp"] = json!(2);
        let forged = Postmark::from_value(value).unwrap();
        let key = VerifyKey::from_bytes(&ds.public()).unwrap();
        assert_eq!(forged.verify(&sent, &key), Err(PostmarkError::BadSignature));
    }

    #[test]
    fn malformed_plaintexts_are_field_errors() {
        assert_eq!(Postmark::parse("[]"), Err(PostmarkError::Field("postmark")));
        assert_eq!(Postmark::parse(r#"{"messageHash":"0x12"}"#), Err(PostmarkError::Field("messageHash")));
        let hash = hex_encode(&[0u8; 32]);
        let text = format!(r#"{{"messageHash":"{hash}","incommingTimestamp":"1","signature":"s"}}"#);
        assert_eq!(Postmark::parse(&text), Err(PostmarkError::Field("incommingTimestamp")));
        assert!(matches!(
            Postmark::open("{}", &KxKeyPair::generate()),
            Err(PostmarkError::MalformedPayload(_))
        ));
    }
}
