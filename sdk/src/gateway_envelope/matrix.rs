//! The Matrix form of a gateway document: an `m.room.message` whose `msgtype` is
//! `network.dm3.envelope` (`docs/gateway.md` section 1.2).
//!
//! A custom msgtype rather than a custom event type, because the Matrix specification tells a
//! client to show the `body` of a msgtype it does not know, while clients hide event types they
//! do not know: so a person without DM3 support sees one line saying what arrived. Both bounds
//! come from Matrix's 65,536-byte limit on a whole event, of which the server's own fields take
//! a few KiB.

use serde_json::{Map, Value};

use super::{FALLBACK_TEXT, GatewayEnvelope, GatewayError, bounded};
use crate::canonical;

/// The event type that carries the content.
pub const EVENT_TYPE: &str = "m.room.message";
/// The content's `msgtype`, and the key of the gateway document in it.
pub const MSGTYPE: &str = "network.dm3.envelope";
/// The largest envelope text a Matrix event carries.
pub const MAX_ENVELOPE_BYTES: usize = 48 * 1024;
/// The largest content, as canonical JSON.
pub const MAX_CONTENT_BYTES: usize = 56 * 1024;

/// The content of an `m.room.message` that carries one gateway document.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixGatewayContent(GatewayEnvelope);

impl MatrixGatewayContent {
    /// The content for `envelope`, refused when it would not fit a Matrix event.
    pub fn encode(envelope: GatewayEnvelope) -> Result<Self, GatewayError> {
        bounded("envelope", envelope.envelope_text().len(), MAX_ENVELOPE_BYTES)?;
        let content = Self(envelope);
        let size = canonical::stringify(&content.to_content()).len();
        bounded("Matrix content", size, MAX_CONTENT_BYTES)?;
        Ok(content)
    }

    /// Reads event content: the `msgtype` and the gateway document; `body` and every other
    /// field a client may add (`m.mentions`, `m.relates_to`) are ignored.
    pub fn decode(content: &Value) -> Result<Self, GatewayError> {
        let Value::Object(content) = content else {
            return Err(GatewayError::NotAnObject("Matrix content"));
        };
        if content.get("msgtype").and_then(Value::as_str) != Some(MSGTYPE) {
            return Err(GatewayError::NotGatewayMsgtype);
        }
        // The content arrived parsed, so its size is measured as the sender's server bounded
        // it: the document's envelope is checked against its own bound before it is parsed.
        let document = content.get(MSGTYPE).ok_or(GatewayError::Field(MSGTYPE))?;
        GatewayEnvelope::from_document(document, MAX_ENVELOPE_BYTES).map(Self)
    }

    /// The event content to send (`PUT /rooms/{roomId}/send/m.room.message/{txnId}`).
    pub fn to_content(&self) -> Value {
        let mut content = Map::new();
        content.insert("body".into(), Value::String(FALLBACK_TEXT.to_owned()));
        content.insert("msgtype".into(), Value::String(MSGTYPE.to_owned()));
        content.insert(MSGTYPE.into(), Value::Object(self.0.to_document()));
        Value::Object(content)
    }

    pub fn envelope(&self) -> &GatewayEnvelope {
        &self.0
    }

    pub fn into_envelope(self) -> GatewayEnvelope {
        self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;
    use crate::gateway_envelope::tests::sealed;

    #[test]
    fn content_round_trips_through_json_text() {
        let (envelope, ds) = sealed();
        let carried = GatewayEnvelope::from_envelope(&envelope, ds).unwrap();
        let content = MatrixGatewayContent::encode(carried.clone()).unwrap().to_content();
        assert_eq!(content["body"], FALLBACK_TEXT);
        assert_eq!(content["msgtype"], MSGTYPE);
        // A homeserver hands it back re-serialized: the envelope text must not change.
        let reread: Value = serde_json::from_str(&serde_json::to_string_pretty(&content).unwrap()).unwrap();
        let decoded = MatrixGatewayContent::decode(&reread).unwrap();
        assert_eq!(decoded.envelope().envelope_text(), carried.envelope_text());
    }

    #[test]
    fn other_fields_are_ignored_and_other_msgtypes_refused() {
        let (envelope, ds) = sealed();
        let carried = GatewayEnvelope::from_envelope(&envelope, ds).unwrap();
        let mut content = MatrixGatewayContent::encode(carried.clone()).unwrap().to_content();
        content["m.mentions"] = json!({"user_ids": []});
        content["body"] = json!("anything");
        assert_eq!(MatrixGatewayContent::decode(&content).unwrap().into_envelope(), carried);
        content["msgtype"] = json!("m.text");
        assert_eq!(MatrixGatewayContent::decode(&content), Err(GatewayError::NotGatewayMsgtype));
        let without = json!({"msgtype": MSGTYPE, "body": "x"});
        assert_eq!(MatrixGatewayContent::decode(&without), Err(GatewayError::Field(MSGTYPE)));
        assert_eq!(
            MatrixGatewayContent::decode(&json!("x")),
            Err(GatewayError::NotAnObject("Matrix content"))
        );
    }

    #[test]
    fn an_envelope_too_large_for_a_matrix_event_is_refused_both_ways() {
        let (envelope, ds) = sealed();
        let mut value = envelope.to_value();
        value["padding"] = json!("x".repeat(MAX_ENVELOPE_BYTES));
        let large = GatewayEnvelope::new(&value.to_string(), ds).unwrap();
        assert!(matches!(
            MatrixGatewayContent::encode(large.clone()),
            Err(GatewayError::TooLarge { what: "envelope", .. })
        ));
        let content = json!({"msgtype": MSGTYPE, MSGTYPE: Value::Object(large.to_document())});
        assert!(matches!(MatrixGatewayContent::decode(&content), Err(GatewayError::TooLarge { .. })));
    }

    #[test]
    fn escaping_counts_against_the_content_bound() {
        // Within the envelope bound, but every quote doubles when the text becomes a string.
        let (envelope, ds) = sealed();
        let mut value = envelope.to_value();
        let room = MAX_ENVELOPE_BYTES - envelope.to_json().len() - 32;
        value["quotes"] = json!("\"".repeat(room / 2));
        let quoted = GatewayEnvelope::new(&value.to_string(), ds).unwrap();
        assert!(quoted.envelope_text().len() <= MAX_ENVELOPE_BYTES);
        assert!(matches!(
            MatrixGatewayContent::encode(quoted),
            Err(GatewayError::TooLarge { what: "Matrix content", .. })
        ));
    }
}
