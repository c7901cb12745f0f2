//! The gateway codec: a sealed DM3 envelope carried inside a Matrix event or a Telegram
//! document, for clients that hold their own keys (`docs/gateway.md` section 1).
//!
//! In gateway mode nobody between the two clients opens the envelope, so the codec's one
//! promise is that the envelope arrives as its sender wrote it, byte for byte: its metadata
//! signature covers the canonical form of what the sender built (P2) and the receiving client
//! checks it. The envelope therefore travels as its JSON *text* inside a small **gateway
//! document** (`{deliveryService, envelope, version}`), never as an object a homeserver could
//! reorder or renumber. The same document is a Matrix content's `network.dm3.envelope` field
//! ([`matrix`]) and a Telegram document's file ([`telegram`]).
//!
//! Every bound is checked before the envelope is parsed, and every refusal is a named
//! [`GatewayError`]; nothing here does I/O.

pub mod matrix;
pub mod telegram;

pub use matrix::MatrixGatewayContent;
pub use telegram::TelegramGatewayDocument;

use serde_json::{Map, Value};

use crate::canonical;
use crate::ens::EnsName;
use crate::envelope::{DeliveryInformationField, Envelope, EnvelopeError};

/// The document version this codec writes and the only one it reads.
pub const VERSION: u64 = 1;

/// What a client without DM3 support shows: Matrix's `body`, Telegram's caption.
pub const FALLBACK_TEXT: &str =
    "🔒 DM3 message, end-to-end encrypted. Open it with a DM3 client (dm3 gateway unwrap).";

/// The largest envelope text any network carries here; each network may bound it lower.
pub const MAX_ENVELOPE_BYTES: usize = 1024 * 1024;

/// The document's fields, the only ones a version-1 document has.
const FIELDS: [&str; 3] = ["deliveryService", "envelope", "version"];

/// Why something is not a gateway document, or cannot become one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("the {what} is {size} bytes, more than the {limit} a gateway document may have there")]
    TooLarge { what: &'static str, size: usize, limit: usize },
    #[error("the gateway document is not valid JSON")]
    NotJson,
    #[error("the {0} must be a JSON object")]
    NotAnObject(&'static str),
    #[error("gateway document field `{0}` is missing or has the wrong type")]
    Field(&'static str),
    #[error("unknown gateway document field `{0}`: a new field means a new version")]
    UnknownField(String),
    #[error("unsupported gateway document version {0}: this reader knows version 1")]
    UnsupportedVersion(String),
    #[error("`deliveryService` is not an ENS name: {0}")]
    DeliveryService(String),
    #[error("the carried envelope is not an envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error(
        "the carried envelope's deliveryInformation is in clear (a stored form): a gateway carries \
         envelopes as sealed, with deliveryInformation encrypted to the delivery service"
    )]
    StoredForm,
    #[error("the Matrix content's msgtype is not network.dm3.envelope")]
    NotGatewayMsgtype,
}

/// One sealed envelope for one delivery service, as a gateway document carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayEnvelope {
    delivery_service: EnsName,
    /// The envelope's JSON text exactly as its sender wrote it (surrounding whitespace aside).
    text: String,
    envelope: Envelope,
}

impl GatewayEnvelope {
    /// The envelope whose JSON text is `text`, sealed for `delivery_service`. Whitespace around
    /// the JSON value is not part of it and is dropped; everything inside is kept as it is.
    pub fn new(text: &str, delivery_service: EnsName) -> Result<Self, GatewayError> {
        let text = text.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r'));
        bounded("envelope", text.len(), MAX_ENVELOPE_BYTES)?;
        if delivery_service.is_root() {
            return Err(GatewayError::DeliveryService("the root names no delivery service".into()));
        }
        let envelope = Envelope::parse(text)?;
        if let DeliveryInformationField::Plain(_) = envelope.delivery_information_field() {
            return Err(GatewayError::StoredForm);
        }
        Ok(Self { delivery_service, text: text.to_owned(), envelope })
    }

    /// An envelope this side built or received parsed: carried as `JSON.stringify` writes it
    /// (the reference's key order, [`Envelope::to_json`]).
    pub fn from_envelope(envelope: &Envelope, delivery_service: EnsName) -> Result<Self, GatewayError> {
        Self::new(&envelope.to_json(), delivery_service)
    }

    /// The delivery service the envelope is sealed for (normalized).
    pub fn delivery_service(&self) -> &EnsName {
        &self.delivery_service
    }

    /// The envelope's JSON text, byte for byte as carried.
    pub fn envelope_text(&self) -> &str {
        &self.text
    }

    /// The envelope, parsed and schema-checked.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The gateway document as a JSON object.
    pub fn to_document(&self) -> Map<String, Value> {
        let mut document = Map::new();
        document.insert("deliveryService".into(), Value::String(self.delivery_service.as_str().to_owned()));
        document.insert("envelope".into(), Value::String(self.text.clone()));
        document.insert("version".into(), Value::from(VERSION));
        document
    }

    /// The gateway document as canonical JSON text.
    pub fn to_document_text(&self) -> String {
        canonical::stringify_object(&self.to_document())
    }

    /// Reads a gateway document whose envelope is at most `max_envelope` bytes. The version is
    /// read first, so a newer document is refused as such rather than as malformed.
    pub fn from_document(document: &Value, max_envelope: usize) -> Result<Self, GatewayError> {
        let Value::Object(document) = document else {
            return Err(GatewayError::NotAnObject("gateway document"));
        };
        match document.get("version") {
            Some(Value::Number(n)) if n.as_u64() == Some(VERSION) => {}
            Some(Value::Number(n)) => return Err(GatewayError::UnsupportedVersion(n.to_string())),
            _ => return Err(GatewayError::Field("version")),
        }
        if let Some(unknown) = document.keys().find(|key| !FIELDS.contains(&key.as_str())) {
            return Err(GatewayError::UnknownField(unknown.chars().take(64).collect()));
        }
        let delivery_service = document
            .get("deliveryService")
            .and_then(Value::as_str)
            .ok_or(GatewayError::Field("deliveryService"))?;
        let delivery_service =
            EnsName::parse(delivery_service).map_err(|e| GatewayError::DeliveryService(e.to_string()))?;
        let text = document.get("envelope").and_then(Value::as_str).ok_or(GatewayError::Field("envelope"))?;
        bounded("envelope", text.len(), max_envelope)?;
        Self::new(text, delivery_service)
    }
}

fn bounded(what: &'static str, size: usize, limit: usize) -> Result<(), GatewayError> {
    if size > limit { Err(GatewayError::TooLarge { what, size, limit }) } else { Ok(()) }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;
    use crate::envelope::DeliveryInformation;
    use crate::keys::ProfileKeys;
    use crate::message::MessageBuilder;

    /// An envelope sealed with fixed keys, and the delivery service's name.
    pub(crate) fn sealed() -> (Envelope, EnsName) {
        let alice = ProfileKeys::from_seed(&[1; 32]);
        let bob = ProfileKeys::from_seed(&[2; 32]);
        let ds = ProfileKeys::from_seed(&[3; 32]);
        let message = MessageBuilder::now("bob.eth", "alice.eth").text("hi", None).sign(&alice.signing);
        let envelope =
            Envelope::seal(&message, &alice.signing, bob.encryption.public(), ds.encryption.public())
                .unwrap();
        (envelope, EnsName::parse("ds.example.eth").unwrap())
    }

    #[test]
    fn the_document_round_trips_and_keeps_the_text() {
        let (envelope, ds) = sealed();
        let text = format!(" {}\n", envelope.to_json());
        let carried = GatewayEnvelope::new(&text, ds.clone()).unwrap();
        assert_eq!(carried.envelope_text(), envelope.to_json());
        let back = GatewayEnvelope::from_document(&Value::Object(carried.to_document()), MAX_ENVELOPE_BYTES);
        assert_eq!(back.unwrap(), carried);
        assert_eq!(carried.envelope(), &envelope);
        assert_eq!(carried.delivery_service(), &ds);
    }

    #[test]
    fn refusals_are_named() {
        let (envelope, ds) = sealed();
        let good =
            Value::Object(GatewayEnvelope::from_envelope(&envelope, ds.clone()).unwrap().to_document());
        let with = |field: &str, value: Value| {
            let mut document = good.clone();
            document[field] = value;
            GatewayEnvelope::from_document(&document, MAX_ENVELOPE_BYTES).unwrap_err()
        };
        assert_eq!(with("version", json!(2)), GatewayError::UnsupportedVersion("2".into()));
        assert_eq!(with("version", json!("1")), GatewayError::Field("version"));
        assert_eq!(with("extra", json!(1)), GatewayError::UnknownField("extra".into()));
        assert_eq!(with("envelope", json!({})), GatewayError::Field("envelope"));
        assert!(matches!(with("envelope", json!("{}")), GatewayError::Envelope(_)));
        assert!(matches!(with("deliveryService", json!("a..b")), GatewayError::DeliveryService(_)));
        let limit = envelope.to_json().len() - 1;
        assert!(matches!(
            GatewayEnvelope::from_document(&good, limit),
            Err(GatewayError::TooLarge { what: "envelope", .. })
        ));
        let stored =
            envelope.with_plain_delivery_information(&DeliveryInformation::new("bob.eth", "alice.eth"));
        assert_eq!(GatewayEnvelope::from_envelope(&stored, ds.clone()), Err(GatewayError::StoredForm));
        assert!(matches!(
            GatewayEnvelope::new(&envelope.to_json(), EnsName::root()),
            Err(GatewayError::DeliveryService(_))
        ));
        assert_eq!(
            GatewayEnvelope::from_document(&json!([]), 10),
            Err(GatewayError::NotAnObject("gateway document"))
        );
    }
}
