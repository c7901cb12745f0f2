//! Reading an envelope: the receiver's message, the DS's delivery information,
//! and the sender's metadata signature.
//!
//! The reference receiver checks none of the hashes or signatures (P14). We
//! check the hash that binds the metadata to the ciphertext on every open,
//! because the messenger dedups and acknowledges by that hash (§10.2): a
//! forged `messageHash` would let a sender shadow or suppress another
//! message. The metadata signature is a separate step, since it needs the
//! sender's profile and survives only until a DS decrypts the delivery
//! information (P9).

use serde_json::Value;

use super::Envelope;
use super::{DeliveryInformation, DeliveryInformationField, EnvelopeError, EnvelopeFormat};
use crate::canonical;
use crate::crypto::CryptoError;
use crate::crypto::asymmetric::{EncryptedPayload, decrypt_to_string};
use crate::crypto::kx::KxKeyPair;
use crate::crypto::signing::VerifyKey;
use crate::message::{Message, MessageError, MessageHash};

/// Why an envelope (or its delivery information) could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the encrypted payload is malformed: {0}")]
    MalformedPayload(String),
    #[error("decryption failed: not encrypted to this key, or tampered with")]
    WrongKey,
    #[error("the ephemeral key is a small-order point")]
    WeakEphemeralKey,
    #[error("the decrypted plaintext has no valid padding")]
    BadPadding,
    #[error("the decrypted plaintext is not UTF-8")]
    NotUtf8,
    #[error("the decrypted plaintext is not a DM3 message: {0}")]
    NotAMessage(MessageError),
    #[error("the decrypted delivery information is malformed: {0}")]
    NotDeliveryInformation(EnvelopeError),
    #[error("metadata.{field} is {claimed} but the content hashes to {computed}")]
    HashMismatch { field: &'static str, claimed: String, computed: String },
}

impl From<CryptoError> for OpenError {
    fn from(error: CryptoError) -> Self {
        match error {
            CryptoError::WrongKeyOrTampered => Self::WrongKey,
            CryptoError::WeakSharedSecret => Self::WeakEphemeralKey,
            CryptoError::BadPadding => Self::BadPadding,
            CryptoError::NotUtf8 => Self::NotUtf8,
            other => Self::MalformedPayload(other.to_string()),
        }
    }
}

/// Why the metadata signature does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataSignatureError {
    /// A DS has replaced the signed, encrypted `deliveryInformation` with its
    /// plaintext (P9); the signed bytes are gone and nothing can be checked.
    #[error("the delivery information was decrypted by a DS; the metadata signature cannot be checked")]
    NotVerifiable,
    #[error("metadata.signature is not a base64 Ed25519 signature")]
    Malformed,
    #[error("metadata.signature does not verify with the sender's key")]
    Invalid,
}

/// What the receiver gets out of an envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedEnvelope {
    /// The decrypted message, as the sender signed it.
    pub message: Message,
    /// `sha256(stringify(message))`: the id to dedup, acknowledge and
    /// reference by. Equal to `metadata.messageHash` in the current format;
    /// computed for the npm format, which does not carry it (P1).
    pub message_hash: MessageHash,
    pub format: EnvelopeFormat,
}

impl Envelope {
    /// Decrypts `message` with the receiver's X25519 key and checks the
    /// metadata hash: `messageHash == sha256(stringify(message))` in the
    /// current format, `encryptedMessageHash == sha256(stringify(<message
    /// string>))` in the npm format (P1, P3).
    pub fn open(&self, receiver: &KxKeyPair) -> Result<OpenedEnvelope, OpenError> {
        let plaintext = decrypt_field(receiver, self.message())?;
        let message = Message::parse(&plaintext).map_err(OpenError::NotAMessage)?;
        let message_hash = message.hash();
        let (field, claimed, computed) = match self.format {
            EnvelopeFormat::MessageHash => ("messageHash", self.message_hash(), message_hash),
            EnvelopeFormat::EncryptedMessageHash => (
                "encryptedMessageHash",
                self.encrypted_message_hash(),
                MessageHash::of_canonical(&canonical::stringify_str(self.message())),
            ),
        };
        if claimed != Some(computed) {
            return Err(OpenError::HashMismatch {
                field,
                claimed: self.metadata().get(field).and_then(Value::as_str).unwrap_or_default().to_owned(),
                computed: computed.to_string(),
            });
        }
        Ok(OpenedEnvelope { message, message_hash, format: self.format })
    }

    /// The delivery information: decrypted with the DS's X25519 key as sent
    /// (§8 step 2), or read as is once a DS has stored the envelope (P9).
    pub fn delivery_information(&self, ds: &KxKeyPair) -> Result<DeliveryInformation, OpenError> {
        match self.delivery_information_field() {
            DeliveryInformationField::Plain(plain) => Ok(plain.clone()),
            DeliveryInformationField::Encrypted(text) => {
                DeliveryInformation::parse(&decrypt_field(ds, text)?)
                    .map_err(OpenError::NotDeliveryInformation)
            }
        }
    }

    /// Checks the sender's Ed25519 signature over `stringify(metadata without
    /// signature)` (§7.2 step 4). Only possible while `deliveryInformation` is
    /// still the encrypted string the sender signed: a DS gets to check it,
    /// a receiver of the stored form cannot (P9). The reference DS does not
    /// check it at all (P14).
    pub fn verify_metadata(&self, sender: &VerifyKey) -> Result<(), MetadataSignatureError> {
        if matches!(self.delivery_information_field(), DeliveryInformationField::Plain(_)) {
            return Err(MetadataSignatureError::NotVerifiable);
        }
        let mut unsigned = self.metadata().clone();
        unsigned.remove("signature");
        match sender.verify_b64(&canonical::stringify_object(&unsigned), self.signature()) {
            Ok(true) => Ok(()),
            Ok(false) => Err(MetadataSignatureError::Invalid),
            Err(_) => Err(MetadataSignatureError::Malformed),
        }
    }
}

/// `decryptAsymmetric(own, JSON.parse(field))` as text.
pub(crate) fn decrypt_field(own: &KxKeyPair, field: &str) -> Result<String, OpenError> {
    let payload = EncryptedPayload::parse(field)?;
    Ok(decrypt_to_string(own, &payload)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;
    use crate::crypto::signing::SigningKeyPair;
    use crate::envelope::SealRandomness;

    struct Fixture {
        sender: SigningKeyPair,
        bob: KxKeyPair,
        ds: KxKeyPair,
        envelope: Envelope,
    }

    fn fixture(format: EnvelopeFormat) -> Fixture {
        let sender = SigningKeyPair::generate();
        let mut value =
            json!({"message": "hi", "metadata": {"to": "b", "from": "a", "timestamp": 1, "type": "NEW"}});
        value["signature"] = json!(sender.sign_b64(&canonical::stringify(&value)));
        let message = Message::from_value(value).unwrap();
        let (bob, ds) = (KxKeyPair::generate(), KxKeyPair::generate());
        let envelope = Envelope::seal_with(
            &message,
            &sender,
            bob.public(),
            ds.public(),
            format,
            &SealRandomness::random(),
        )
        .unwrap();
        Fixture { sender, bob, ds, envelope }
    }

    fn edit(envelope: &Envelope, change: impl FnOnce(&mut Value)) -> Envelope {
        let mut value = envelope.to_value();
        change(&mut value);
        Envelope::from_value(value).unwrap()
    }

    #[test]
    fn wrong_key_and_tampering_are_typed_errors() {
        let f = fixture(EnvelopeFormat::MessageHash);
        assert_eq!(f.envelope.open(&f.ds), Err(OpenError::WrongKey));
        assert_eq!(f.envelope.delivery_information(&f.bob), Err(OpenError::WrongKey));
        let mut payload = EncryptedPayload::parse(f.envelope.message()).unwrap();
        let mut bytes = crate::encoding::b64_decode(&payload.ciphertext).unwrap();
        bytes[0] ^= 1;
        payload.ciphertext = crate::encoding::b64_encode(&bytes);
        let tampered = edit(&f.envelope, |v| v["message"] = json!(payload.to_canonical_string()));
        assert_eq!(tampered.open(&f.bob), Err(OpenError::WrongKey));
        let garbage = edit(&f.envelope, |v| v["message"] = json!("not json"));
        assert!(matches!(garbage.open(&f.bob), Err(OpenError::MalformedPayload(_))));
    }

    #[test]
    fn a_swapped_hash_is_a_mismatch_in_both_formats() {
        let other = "0x0000000000000000000000000000000000000000000000000000000000000001";
        for format in [EnvelopeFormat::MessageHash, EnvelopeFormat::EncryptedMessageHash] {
            let f = fixture(format);
            let swapped = edit(&f.envelope, |v| v["metadata"][format.hash_field()] = json!(other));
            let error = swapped.open(&f.bob).unwrap_err();
            assert!(matches!(error, OpenError::HashMismatch { field, .. } if field == format.hash_field()));
        }
    }

    #[test]
    fn metadata_signature_checks() {
        let f = fixture(EnvelopeFormat::MessageHash);
        let key = VerifyKey::from_bytes(&f.sender.public()).unwrap();
        assert_eq!(f.envelope.verify_metadata(&key), Ok(()));
        let stranger = VerifyKey::from_bytes(&SigningKeyPair::generate().public()).unwrap();
        assert_eq!(f.envelope.verify_metadata(&stranger), Err(MetadataSignatureError::Invalid));
        let changed = edit(&f.envelope, |v| v["metadata"]["version"] = json!("v2"));
        assert_eq!(changed.verify_metadata(&key), Err(MetadataSignatureError::Invalid));
        let malformed = edit(&f.envelope, |v| v["metadata"]["signature"] = json!("AAAA"));
        assert_eq!(malformed.verify_metadata(&key), Err(MetadataSignatureError::Malformed));
        let stored = f.envelope.to_stored(&f.envelope.delivery_information(&f.ds).unwrap(), "pm");
        assert_eq!(stored.verify_metadata(&key), Err(MetadataSignatureError::NotVerifiable));
        // The stored form still opens: the hash does not cover the delivery information.
        assert!(stored.open(&f.bob).is_ok());
    }

    #[test]
    fn decrypted_garbage_is_not_a_message() {
        let f = fixture(EnvelopeFormat::MessageHash);
        let payload = crate::crypto::asymmetric::encrypt(f.bob.public(), b"[1,2]").unwrap();
        let envelope = edit(&f.envelope, |v| v["message"] = json!(payload.to_canonical_string()));
        assert!(matches!(envelope.open(&f.bob), Err(OpenError::NotAMessage(_))));
        let payload = crate::crypto::asymmetric::encrypt(f.ds.public(), br#"{"to":1}"#).unwrap();
        let envelope = edit(&f.envelope, |v| {
            v["metadata"]["deliveryInformation"] = json!(payload.to_canonical_string())
        });
        assert!(matches!(envelope.delivery_information(&f.ds), Err(OpenError::NotDeliveryInformation(_))));
    }
}
