//! `metadata.deliveryInformation`: who the envelope is for, readable by the DS only.
//!
//! The sender encrypts `stringify({to, from})` to the receiving DS's X25519
//! key (§7.2 step 2). The DS decrypts it and then *replaces* the encrypted
//! string with the object when it stores the envelope (P9), so an envelope
//! carries either form, and both must be read. The object is kept as parsed,
//! unknown fields included, because the reference DS stores whatever
//! `JSON.parse` gave it.

use serde_json::{Map, Value};

use super::EnvelopeError;
use crate::canonical;

/// The decrypted delivery information `{to, from, deliveryInstruction?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryInformation {
    raw: Map<String, Value>,
}

impl DeliveryInformation {
    /// `{to, from}`, what the messenger sends; it never sets `deliveryInstruction`.
    pub fn new(to: &str, from: &str) -> Self {
        let mut raw = Map::new();
        raw.insert("to".into(), Value::String(to.to_owned()));
        raw.insert("from".into(), Value::String(from.to_owned()));
        Self { raw }
    }

    /// Adds the spec's opaque routing hook for bridges (§10.4).
    pub fn with_delivery_instruction(mut self, instruction: &str) -> Self {
        self.raw.insert("deliveryInstruction".into(), Value::String(instruction.to_owned()));
        self
    }

    /// Validates the schema's shape: `to` and `from` strings, an optional
    /// `deliveryInstruction` string; anything else is kept untouched.
    pub fn from_value(value: Value) -> Result<Self, EnvelopeError> {
        let Value::Object(raw) = value else {
            return Err(EnvelopeError::Field("metadata.deliveryInformation"));
        };
        for (field, name) in
            [("to", "metadata.deliveryInformation.to"), ("from", "metadata.deliveryInformation.from")]
        {
            if !raw.get(field).is_some_and(Value::is_string) {
                return Err(EnvelopeError::Field(name));
            }
        }
        if raw.get("deliveryInstruction").is_some_and(|v| !v.is_string()) {
            return Err(EnvelopeError::Field("metadata.deliveryInformation.deliveryInstruction"));
        }
        Ok(Self { raw })
    }

    /// Parses the decrypted plaintext (`JSON.parse` on the DS, §8 step 2).
    pub fn parse(text: &str) -> Result<Self, EnvelopeError> {
        let value = serde_json::from_str(text).map_err(|_| EnvelopeError::NotJson)?;
        Self::from_value(value)
    }

    fn str_field(&self, field: &str) -> Option<&str> {
        self.raw.get(field).and_then(Value::as_str)
    }

    /// The receiver's ENS name, as written by the sender (not normalized).
    pub fn to(&self) -> &str {
        self.str_field("to").unwrap_or_default()
    }

    /// The sender's ENS name as the sender *claims* it; nothing checks it (P14).
    pub fn from(&self) -> &str {
        self.str_field("from").unwrap_or_default()
    }

    pub fn delivery_instruction(&self) -> Option<&str> {
        self.str_field("deliveryInstruction")
    }

    crate::raw_json::raw_json_object!();

    /// The plaintext that is encrypted to the DS: sorted keys, `{"from":…,"to":…}`.
    pub fn canonical(&self) -> String {
        canonical::stringify_object(&self.raw)
    }
}

/// The two forms `metadata.deliveryInformation` takes on the wire (P9).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeliveryInformationField<'a> {
    /// As sent: `stringify(EncryptedPayload)` for the DS.
    Encrypted(&'a str),
    /// As stored and delivered by a DS: the decrypted object.
    Plain(&'a DeliveryInformation),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn canonical_form_sorts_from_before_to() {
        assert_eq!(
            DeliveryInformation::new("bob.eth", "alice.eth").canonical(),
            r#"{"from":"alice.eth","to":"bob.eth"}"#
        );
    }

    #[test]
    fn shape_is_checked_and_unknown_fields_are_kept() {
        let parsed =
            DeliveryInformation::parse(r#"{"to":"b","from":"a","deliveryInstruction":"t","x":1}"#).unwrap();
        assert_eq!((parsed.to(), parsed.from(), parsed.delivery_instruction()), ("b", "a", Some("t")));
        assert_eq!(parsed.canonical(), r#"{"deliveryInstruction":"t","from":"a","to":"b","x":1}"#);
        assert!(DeliveryInformation::parse(r#"{"to":"b"}"#).is_err());
        assert!(DeliveryInformation::parse(r#"{"to":"b","from":"a","deliveryInstruction":7}"#).is_err());
        assert!(DeliveryInformation::parse("[]").is_err());
        assert_eq!(DeliveryInformation::parse("{"), Err(EnvelopeError::NotJson));
    }
}
