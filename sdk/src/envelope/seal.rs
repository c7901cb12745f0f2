//! Building an envelope, as `buildEnvelop` does (§7.2).
//!
//! 1. `message = stringify(encryptAsymmetric(recipientPk, stringify(Message)))`;
//! 2. `deliveryInformation = stringify(encryptAsymmetric(dsPk, stringify({to, from})))`,
//!    with its own ephemeral key, to the *receiving DS* (one envelope per DS, P13);
//! 3. `metadata = {encryptionScheme, deliveryInformation, messageHash, version}`;
//! 4. `metadata.signature = sign(senderSk, stringify(metadata))` over the UTF-8
//!    of the canonical string itself (P6).
//!
//! The randomness (two ephemeral key pairs, two nonces) can be injected, as
//! the reference lets `buildEnvelop` take its `encryptAsymmetric`, so the
//! reference vectors are reproduced byte for byte.

use serde_json::{Map, Value};

use super::{DeliveryInformation, ENCRYPTION_SCHEME, Envelope, EnvelopeFormat, VERSION};
use crate::canonical;
use crate::crypto::CryptoError;
use crate::crypto::asymmetric::encrypt_with;
use crate::crypto::kx::KxKeyPair;
use crate::crypto::random_bytes;
use crate::crypto::signing::SigningKeyPair;
use crate::hash::sha256_hex;
use crate::message::Message;

/// Why an envelope could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the message has no signature; sign it before sealing")]
    UnsignedMessage,
    #[error("the recipient's encryption key is unusable: {0}")]
    BadRecipientKey(CryptoError),
    #[error("the delivery service's encryption key is unusable: {0}")]
    BadDeliveryServiceKey(CryptoError),
}

/// One encryption's randomness: the ephemeral kx key pair and the 12-byte nonce.
#[derive(Debug, Clone)]
pub struct Ephemeral {
    pub key_pair: KxKeyPair,
    pub nonce: [u8; 12],
}

impl Ephemeral {
    /// Fresh randomness, as `encryptAsymmetric` draws it.
    pub fn random() -> Self {
        Self { key_pair: KxKeyPair::generate(), nonce: random_bytes() }
    }
}

/// The randomness of one envelope, in the order the reference draws it.
#[derive(Debug, Clone)]
pub struct SealRandomness {
    /// For `envelope.message`, to the recipient.
    pub message: Ephemeral,
    /// For `metadata.deliveryInformation`, to the DS.
    pub delivery_information: Ephemeral,
}

impl SealRandomness {
    pub fn random() -> Self {
        Self { message: Ephemeral::random(), delivery_information: Ephemeral::random() }
    }
}

impl Envelope {
    /// Seals `message` for one recipient at one DS, in the current format
    /// (`metadata.messageHash`, P1) with fresh randomness. The delivery
    /// information is `{to, from}` from the message metadata.
    pub fn seal(
        message: &Message,
        sender_signing: &SigningKeyPair,
        recipient_encryption_pk: &[u8; 32],
        ds_encryption_pk: &[u8; 32],
    ) -> Result<Envelope, SealError> {
        Self::seal_with(
            message,
            sender_signing,
            recipient_encryption_pk,
            ds_encryption_pk,
            EnvelopeFormat::MessageHash,
            &SealRandomness::random(),
        )
    }

    /// [`seal`](Self::seal) with a chosen format and injected randomness. Use
    /// [`EnvelopeFormat::EncryptedMessageHash`] only to talk to a DS that runs
    /// the npm 1.7.1 build, and fixed randomness only for reproducible tests.
    pub fn seal_with(
        message: &Message,
        sender_signing: &SigningKeyPair,
        recipient_encryption_pk: &[u8; 32],
        ds_encryption_pk: &[u8; 32],
        format: EnvelopeFormat,
        randomness: &SealRandomness,
    ) -> Result<Envelope, SealError> {
        if message.signature().is_none() {
            return Err(SealError::UnsignedMessage);
        }
        let encrypted_message = encrypt_with(
            recipient_encryption_pk,
            &randomness.message.key_pair,
            &randomness.message.nonce,
            message.canonical().as_bytes(),
        )
        .map_err(SealError::BadRecipientKey)?
        .to_canonical_string();

        let delivery_information = DeliveryInformation::new(message.to(), message.from());
        let encrypted_delivery_information = encrypt_with(
            ds_encryption_pk,
            &randomness.delivery_information.key_pair,
            &randomness.delivery_information.nonce,
            delivery_information.canonical().as_bytes(),
        )
        .map_err(SealError::BadDeliveryServiceKey)?
        .to_canonical_string();

        let hash = match format {
            EnvelopeFormat::MessageHash => message.hash().to_string(),
            // P3: the npm build hashes the JSON-quoted ciphertext string.
            EnvelopeFormat::EncryptedMessageHash => sha256_hex(&canonical::stringify_str(&encrypted_message)),
        };
        let mut metadata = Map::new();
        metadata.insert("encryptionScheme".into(), Value::String(ENCRYPTION_SCHEME.into()));
        metadata.insert("deliveryInformation".into(), Value::String(encrypted_delivery_information));
        metadata.insert(format.hash_field().into(), Value::String(hash));
        metadata.insert("version".into(), Value::String(VERSION.into()));
        let signature = sender_signing.sign_b64(&canonical::stringify_object(&metadata));
        metadata.insert("signature".into(), Value::String(signature));

        let mut raw = Map::new();
        raw.insert("message".into(), Value::String(encrypted_message));
        raw.insert("metadata".into(), Value::Object(metadata));
        Ok(Envelope { raw, format, plain_delivery_information: None })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;
    use crate::crypto::signing::VerifyKey;

    fn signed_message(signing: &SigningKeyPair) -> Message {
        let mut value = json!({
            "message": "hi",
            "metadata": {"to": "bob.eth", "from": "alice.eth", "timestamp": 1, "type": "NEW"},
        });
        let signature = signing.sign_b64(&canonical::stringify(&value));
        value["signature"] = json!(signature);
        Message::from_value(value).unwrap()
    }

    #[test]
    fn sealed_envelope_opens_and_verifies() {
        let sender = SigningKeyPair::generate();
        let bob = KxKeyPair::generate();
        let ds = KxKeyPair::generate();
        let message = signed_message(&sender);
        let envelope = Envelope::seal(&message, &sender, bob.public(), ds.public()).unwrap();
        assert_eq!(envelope.format(), EnvelopeFormat::MessageHash);
        assert_eq!(Envelope::from_value(envelope.to_value()).unwrap(), envelope);
        let opened = envelope.open(&bob).unwrap();
        assert_eq!(opened.message, message);
        assert_eq!(opened.message_hash, message.hash());
        let delivery = envelope.delivery_information(&ds).unwrap();
        assert_eq!((delivery.to(), delivery.from()), ("bob.eth", "alice.eth"));
        assert_eq!(envelope.verify_metadata(&VerifyKey::from_bytes(&sender.public()).unwrap()), Ok(()));
    }

    #[test]
    fn npm_format_hashes_the_quoted_ciphertext() {
        let sender = SigningKeyPair::generate();
        let bob = KxKeyPair::generate();
        let message = signed_message(&sender);
        let envelope = Envelope::seal_with(
            &message,
            &sender,
            bob.public(),
            bob.public(),
            EnvelopeFormat::EncryptedMessageHash,
            &SealRandomness::random(),
        )
        .unwrap();
        let expected = sha256_hex(&canonical::stringify_str(envelope.message()));
        assert_eq!(envelope.encrypted_message_hash().unwrap().to_string(), expected);
        assert_eq!(envelope.open(&bob).unwrap().message_hash, message.hash());
    }

    #[test]
    fn unsigned_messages_and_weak_keys_are_refused() {
        let sender = SigningKeyPair::generate();
        let good = KxKeyPair::generate();
        let unsigned = Message::from_value(json!({
            "metadata": {"to": "b", "from": "a", "timestamp": 1, "type": "NEW"},
        }))
        .unwrap();
        assert_eq!(
            Envelope::seal(&unsigned, &sender, good.public(), good.public()),
            Err(SealError::UnsignedMessage)
        );
        let message = signed_message(&sender);
        assert_eq!(
            Envelope::seal(&message, &sender, &[0; 32], good.public()),
            Err(SealError::BadRecipientKey(CryptoError::WeakSharedSecret))
        );
        assert_eq!(
            Envelope::seal(&message, &sender, good.public(), &[0; 32]),
            Err(SealError::BadDeliveryServiceKey(CryptoError::WeakSharedSecret))
        );
    }
}
