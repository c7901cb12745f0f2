//! Message signatures (docs/protocol.md §5.3, P6).
//!
//! The signature is Ed25519 (libsodium, detached) over the UTF-8 of
//! `stringify(message without signature)`, base64-encoded. Verification does
//! what `checkMessageSignature` does: take the *whole received object*, drop
//! only `signature`, re-stringify, verify, and also require that
//! `metadata.from` names the expected sender once both are normalized. Unknown
//! fields stay in the signed string (P2, P17); nothing is re-serialized from a
//! struct.

use super::Message;
use crate::canonical;
use crate::crypto::signing::{SigningKeyPair, VerifyKey};
use crate::name::{NameError, normalize_ens_name};

/// Why a message is not a genuine message from the expected sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageVerifyError {
    #[error("the message has no signature")]
    Unsigned,
    #[error("the message signature is not 64 base64-encoded bytes")]
    MalformedSignature,
    #[error("the message signature does not match its content and the sender's key")]
    BadSignature,
    #[error("the message claims to be from `{actual}`, but `{expected}` was expected")]
    WrongSender { expected: String, actual: String },
    #[error(transparent)]
    InvalidName(#[from] NameError),
}

impl Message {
    /// `stringify(message without signature)`: what the signature covers.
    pub fn signed_string(&self) -> String {
        if !self.raw.contains_key("signature") {
            return self.canonical();
        }
        let mut unsigned = self.raw.clone();
        unsigned.remove("signature");
        canonical::stringify_object(&unsigned)
    }

    /// Signs (or re-signs) the message with the sender's Ed25519 key.
    pub fn sign(mut self, key: &SigningKeyPair) -> Message {
        self.raw.remove("signature");
        let signature = key.sign_b64(&canonical::stringify_object(&self.raw));
        self.raw.insert("signature".into(), signature.into());
        self
    }

    /// `checkMessageSignature(message, publicSigningKey, expectedFrom)`: the
    /// signature verifies under `key` (the sender profile's signing key) and
    /// `metadata.from` is `expected_from`, compared after normalization (§2.2).
    pub fn verify(&self, key: &VerifyKey, expected_from: &str) -> Result<(), MessageVerifyError> {
        let signature = self.signature().ok_or(MessageVerifyError::Unsigned)?;
        match key.verify_b64(&self.signed_string(), signature) {
            Ok(true) => {}
            Ok(false) => return Err(MessageVerifyError::BadSignature),
            Err(_) => return Err(MessageVerifyError::MalformedSignature),
        }
        if normalize_ens_name(self.from())? != normalize_ens_name(expected_from)? {
            return Err(MessageVerifyError::WrongSender {
                expected: expected_from.to_owned(),
                actual: self.from().to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;
    use crate::message::MessageBuilder;

    fn key_pair() -> (SigningKeyPair, VerifyKey) {
        let pair = SigningKeyPair::from_seed(&[7; 32]);
        let key = VerifyKey::from_bytes(&pair.public()).unwrap();
        (pair, key)
    }

    #[test]
    fn unknown_fields_are_signed_and_checked() {
        let (pair, key) = key_pair();
        let mut value = MessageBuilder::new("bob.eth", "Alice.eth", 5).text("hi", None).to_value();
        value["metadata"]["replyDeliveryInstruction"] = json!("topic-1");
        value["future"] = json!({"b": 1, "a": [1.5e21]});
        let signed = Message::from_value(value).unwrap().sign(&pair);
        assert!(signed.signed_string().contains(r#""future":{"a":[1.5e+21],"b":1}"#));
        assert_eq!(signed.verify(&key, "ALICE.ETH"), Ok(()));

        let mut tampered = signed.to_value();
        tampered["future"]["b"] = json!(2);
        let tampered = Message::from_value(tampered).unwrap();
        assert_eq!(tampered.verify(&key, "alice.eth"), Err(MessageVerifyError::BadSignature));
    }

    #[test]
    fn the_sender_name_must_match() {
        let (pair, key) = key_pair();
        let signed = MessageBuilder::new("bob.eth", "alice.eth", 5).text("hi", None).sign(&pair);
        assert_eq!(
            signed.verify(&key, "mallory.eth"),
            Err(MessageVerifyError::WrongSender {
                expected: "mallory.eth".into(),
                actual: "alice.eth".into()
            })
        );
        assert!(matches!(signed.verify(&key, "-x.eth"), Err(MessageVerifyError::InvalidName(_))));
    }

    #[test]
    fn missing_or_malformed_signatures_are_named() {
        let (pair, key) = key_pair();
        let unsigned = MessageBuilder::new("bob.eth", "alice.eth", 5).text("hi", None);
        assert_eq!(unsigned.verify(&key, "alice.eth"), Err(MessageVerifyError::Unsigned));
        let mut value = unsigned.sign(&pair).to_value();
        value["signature"] = json!("AAAA");
        let message = Message::from_value(value).unwrap();
        assert_eq!(message.verify(&key, "alice.eth"), Err(MessageVerifyError::MalformedSignature));
        // Re-signing replaces the signature instead of signing over it.
        let resigned = message.sign(&pair);
        assert_eq!(resigned.verify(&key, "alice.eth"), Ok(()));
    }
}
