//! The wire envelope (`EncryptionEnvelop`) that carries one encrypted message to one DS.
//!
//! An envelope is a JSON object `{message, metadata, postmark?}` whose fields
//! are mostly *strings holding JSON* (P5). The sender signs the canonical form
//! of `metadata`, and the DS measures the canonical form of the whole object,
//! so an [`Envelope`] keeps the object exactly as parsed, unknown fields
//! included, with a validated typed view next to it (P2).
//!
//! Two formats are in circulation (P1): the current one (git tag 1.7.1,
//! develop) carries `metadata.messageHash`, the npm 1.7.1 dist carries
//! `metadata.encryptedMessageHash`. We emit the current one and read both.
//! `deliveryInformation` is an encrypted string as sent, or the decrypted
//! object once a DS has stored the envelope (P9).
//!
//! - [`seal`](Envelope::seal) builds an envelope (`seal.rs`, §7.2);
//! - [`open`](Envelope::open), [`delivery_information`](Envelope::delivery_information)
//!   and [`verify_metadata`](Envelope::verify_metadata) read one (`open.rs`);
//! - [`to_json`](Envelope::to_json) and [`jsonrpc_submit_body`](Envelope::jsonrpc_submit_body)
//!   write the messenger's `JSON.stringify` text (`wire.rs`).

mod delivery;
mod open;
mod seal;
mod wire;

pub use delivery::{DeliveryInformation, DeliveryInformationField};
pub use open::{MetadataSignatureError, OpenError, OpenedEnvelope};
pub use seal::{Ephemeral, SealError, SealRandomness};

use serde_json::{Map, Value};

use crate::canonical;
use crate::message::MessageHash;

/// The only value of `metadata.encryptionScheme` (P4).
pub const ENCRYPTION_SCHEME: &str = "x25519-chacha20-poly1305";

/// The only value of `metadata.version`.
pub const VERSION: &str = "v1";

/// The largest envelope text we parse: the reference DS's request body limit
/// (`express.json({limit:'50mb'})`, §9). Real envelopes are a few KB to the
/// DS `sizeLimit` (100 000 bytes by default, P12).
pub const MAX_ENVELOPE_TEXT: usize = 50 * 1024 * 1024;

/// Which hash the metadata carries (P1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvelopeFormat {
    /// `metadata.messageHash = sha256(stringify(Message))`: git tag 1.7.1 and
    /// develop; what the messenger dedups and acknowledges by. We emit this.
    MessageHash,
    /// `metadata.encryptedMessageHash = sha256(stringify(<message string>))`:
    /// the npm 1.7.1 dist. Read for compatibility.
    EncryptedMessageHash,
}

impl EnvelopeFormat {
    /// The metadata field that carries the hash.
    pub fn hash_field(self) -> &'static str {
        match self {
            Self::MessageHash => "messageHash",
            Self::EncryptedMessageHash => "encryptedMessageHash",
        }
    }
}

/// Why a JSON value is not an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the envelope is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the envelope is not valid JSON")]
    NotJson,
    #[error("an envelope must be a JSON object")]
    NotAnObject,
    #[error("envelope field `{0}` is missing or malformed")]
    Field(&'static str),
    #[error("the envelope metadata has neither `messageHash` nor `encryptedMessageHash`")]
    MissingMessageHash,
    #[error("dm3_submitMessage params[0] must be the envelope as a JSON string or object")]
    BadRpcParam,
}

/// An envelope, kept as its JSON object, with a validated view.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    raw: Map<String, Value>,
    format: EnvelopeFormat,
    plain_delivery_information: Option<DeliveryInformation>,
}

impl Envelope {
    /// Parses envelope JSON text, e.g. `JSON.parse(params[0])` on the DS.
    pub fn parse(text: &str) -> Result<Self, EnvelopeError> {
        if text.len() > MAX_ENVELOPE_TEXT {
            return Err(EnvelopeError::TooLarge { limit: MAX_ENVELOPE_TEXT });
        }
        // serde_json bounds nesting depth (128), so hostile input cannot
        // exhaust the stack.
        let value = serde_json::from_str(text).map_err(|_| EnvelopeError::NotJson)?;
        Self::from_value(value)
    }

    /// The `dm3_submitMessage` `params[0]`: a JSON string as the reference
    /// requires, or leniently the envelope object itself (§9.1).
    pub fn from_rpc_param(param: &Value) -> Result<Self, EnvelopeError> {
        match param {
            Value::String(text) => Self::parse(text),
            Value::Object(_) => Self::from_value(param.clone()),
            _ => Err(EnvelopeError::BadRpcParam),
        }
    }

    /// Validates the fields the reference schema requires and keeps every
    /// other field as it is.
    pub fn from_value(value: Value) -> Result<Self, EnvelopeError> {
        let Value::Object(raw) = value else {
            return Err(EnvelopeError::NotAnObject);
        };
        require_str(&raw, "message", "message")?;
        if raw.get("postmark").is_some_and(|v| !v.is_string()) {
            return Err(EnvelopeError::Field("postmark"));
        }
        let metadata =
            raw.get("metadata").and_then(Value::as_object).ok_or(EnvelopeError::Field("metadata"))?;
        require_str(metadata, "version", "metadata.version")?;
        require_str(metadata, "signature", "metadata.signature")?;
        if metadata.get("encryptionScheme").is_some_and(|v| !v.is_string()) {
            return Err(EnvelopeError::Field("metadata.encryptionScheme"));
        }
        let format = if metadata.contains_key("messageHash") {
            EnvelopeFormat::MessageHash
        } else if metadata.contains_key("encryptedMessageHash") {
            EnvelopeFormat::EncryptedMessageHash
        } else {
            return Err(EnvelopeError::MissingMessageHash);
        };
        for (field, name) in [
            ("messageHash", "metadata.messageHash"),
            ("encryptedMessageHash", "metadata.encryptedMessageHash"),
        ] {
            if let Some(hash) = metadata.get(field) {
                let valid = hash.as_str().is_some_and(|text| text.parse::<MessageHash>().is_ok());
                if !valid {
                    return Err(EnvelopeError::Field(name));
                }
            }
        }
        let plain_delivery_information = match metadata.get("deliveryInformation") {
            Some(Value::String(_)) => None,
            Some(object @ Value::Object(_)) => Some(DeliveryInformation::from_value(object.clone())?),
            _ => return Err(EnvelopeError::Field("metadata.deliveryInformation")),
        };
        Ok(Self { raw, format, plain_delivery_information })
    }

    crate::raw_json::raw_json_object!();

    pub fn into_value(self) -> Value {
        Value::Object(self.raw)
    }

    pub fn format(&self) -> EnvelopeFormat {
        self.format
    }

    /// `envelope.message`: `stringify(EncryptedPayload)` for the receiver, an opaque string (§16.2).
    pub fn message(&self) -> &str {
        self.raw.get("message").and_then(Value::as_str).unwrap_or_default()
    }

    /// The metadata object.
    pub fn metadata(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.raw.get("metadata").and_then(Value::as_object).unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }

    fn metadata_str(&self, field: &str) -> Option<&str> {
        self.metadata().get(field).and_then(Value::as_str)
    }

    /// `metadata.messageHash`, present in the current format only; this is the
    /// id the messenger dedups and acknowledges by (P1, §10.2).
    pub fn message_hash(&self) -> Option<MessageHash> {
        self.metadata_str("messageHash").and_then(|text| text.parse().ok())
    }

    /// `metadata.encryptedMessageHash`, present in the npm 1.7.1 format only.
    pub fn encrypted_message_hash(&self) -> Option<MessageHash> {
        self.metadata_str("encryptedMessageHash").and_then(|text| text.parse().ok())
    }

    /// `metadata.signature`: the sender's Ed25519 signature over the metadata.
    pub fn signature(&self) -> &str {
        self.metadata_str("signature").unwrap_or_default()
    }

    pub fn version(&self) -> &str {
        self.metadata_str("version").unwrap_or_default()
    }

    /// `metadata.encryptionScheme`; optional, the spec default is [`ENCRYPTION_SCHEME`].
    pub fn encryption_scheme(&self) -> Option<&str> {
        self.metadata_str("encryptionScheme")
    }

    /// `metadata.deliveryInformation` in whichever form the envelope carries it.
    pub fn delivery_information_field(&self) -> DeliveryInformationField<'_> {
        match &self.plain_delivery_information {
            Some(plain) => DeliveryInformationField::Plain(plain),
            None => DeliveryInformationField::Encrypted(
                self.metadata_str("deliveryInformation").unwrap_or_default(),
            ),
        }
    }

    /// `envelope.postmark`, the DS's encrypted receipt, once a DS has stored it.
    pub fn postmark(&self) -> Option<&str> {
        self.raw.get("postmark").and_then(Value::as_str)
    }

    /// `getEnvelopSize`: UTF-8 bytes of the canonical envelope (§7.3). The DS
    /// measures what it received, before it adds the postmark, and rejects
    /// envelopes above its `sizeLimit`.
    pub fn size(&self) -> usize {
        canonical::stringify_object(&self.raw).len()
    }

    /// The form a DS stores and delivers (§8 step 8): `deliveryInformation`
    /// replaced by the decrypted object (P9) and the encrypted `postmark` added.
    /// The reference stores `stringify` of this object.
    pub fn to_stored(&self, delivery_information: &DeliveryInformation, postmark: &str) -> Envelope {
        let mut stored = self.with_plain_delivery_information(delivery_information);
        stored.raw.insert("postmark".into(), Value::String(postmark.to_owned()));
        stored
    }

    /// `deliveryInformation` replaced by the decrypted object (P9), without a postmark: the
    /// form for a receiver that opens the envelope where it arrived instead of fetching it.
    pub fn with_plain_delivery_information(&self, delivery_information: &DeliveryInformation) -> Envelope {
        let mut raw = self.raw.clone();
        if let Some(Value::Object(metadata)) = raw.get_mut("metadata") {
            metadata.insert("deliveryInformation".into(), delivery_information.to_value());
        }
        Envelope { raw, format: self.format, plain_delivery_information: Some(delivery_information.clone()) }
    }
}

fn require_str(map: &Map<String, Value>, field: &str, name: &'static str) -> Result<(), EnvelopeError> {
    if map.get(field).is_some_and(Value::is_string) { Ok(()) } else { Err(EnvelopeError::Field(name)) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    const HASH: &str = "0x305bd53275b584c77fa27ac507e6abeee91adedcc8405aca7d9da97616947dd0";

    fn minimal(hash_field: &str, delivery: Value) -> Value {
        json!({
            "message": "m",
            "metadata": {"version": "v1", "signature": "s", hash_field: HASH, "deliveryInformation": delivery},
        })
    }

    #[test]
    fn both_formats_and_both_delivery_forms_parse() {
        let current = Envelope::from_value(minimal("messageHash", json!("enc"))).unwrap();
        assert_eq!(current.format(), EnvelopeFormat::MessageHash);
        assert_eq!(current.message_hash().unwrap().to_string(), HASH);
        assert_eq!(current.delivery_information_field(), DeliveryInformationField::Encrypted("enc"));
        let npm =
            Envelope::from_value(minimal("encryptedMessageHash", json!({"to": "b", "from": "a"}))).unwrap();
        assert_eq!(npm.format(), EnvelopeFormat::EncryptedMessageHash);
        assert_eq!(npm.message_hash(), None);
        assert!(npm.encrypted_message_hash().is_some());
        assert!(
            matches!(npm.delivery_information_field(), DeliveryInformationField::Plain(d) if d.to() == "b")
        );
    }

    #[test]
    fn unknown_fields_are_kept_and_counted_in_the_size() {
        let mut value = minimal("messageHash", json!("enc"));
        value["extra"] = json!({"z": 1, "a": [true]});
        let envelope = Envelope::from_value(value.clone()).unwrap();
        assert_eq!(envelope.to_value(), value);
        assert_eq!(envelope.size(), canonical::stringify(&value).len());
    }

    #[test]
    fn malformed_envelopes_are_typed_errors() {
        assert_eq!(Envelope::parse("nope"), Err(EnvelopeError::NotJson));
        assert_eq!(Envelope::parse("[]"), Err(EnvelopeError::NotAnObject));
        let mut value = minimal("messageHash", json!("enc"));
        value["metadata"].as_object_mut().unwrap().remove("messageHash");
        assert_eq!(Envelope::from_value(value), Err(EnvelopeError::MissingMessageHash));
        let value = minimal("messageHash", json!(5));
        assert_eq!(Envelope::from_value(value), Err(EnvelopeError::Field("metadata.deliveryInformation")));
        let mut value = minimal("messageHash", json!("enc"));
        value["metadata"]["messageHash"] = json!("0x12");
        assert_eq!(Envelope::from_value(value), Err(EnvelopeError::Field("metadata.messageHash")));
        let mut value = minimal("messageHash", json!("enc"));
        value["postmark"] = json!({});
        assert_eq!(Envelope::from_value(value), Err(EnvelopeError::Field("postmark")));
        assert_eq!(Envelope::from_rpc_param(&json!(1)), Err(EnvelopeError::BadRpcParam));
    }

    #[test]
    fn rpc_param_may_be_a_string_or_an_object() {
        let value = minimal("messageHash", json!("enc"));
        let from_string = Envelope::from_rpc_param(&Value::String(value.to_string())).unwrap();
        assert_eq!(Envelope::from_rpc_param(&value).unwrap(), from_string);
    }

    #[test]
    fn stored_form_carries_plain_delivery_information_and_postmark() {
        let envelope = Envelope::from_value(minimal("messageHash", json!("enc"))).unwrap();
        let stored = envelope.to_stored(&DeliveryInformation::new("b", "a"), "pm");
        assert_eq!(stored.postmark(), Some("pm"));
        assert_eq!(stored.metadata()["deliveryInformation"], json!({"to": "b", "from": "a"}));
        assert_eq!(Envelope::from_value(stored.to_value()).unwrap(), stored);
    }
}
