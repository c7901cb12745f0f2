//! The envelope as the messenger puts it on the wire: `JSON.stringify`, not canonical.
//!
//! `dm3_submitMessage` carries `params[0] = JSON.stringify(envelope)` (P5),
//! whose key order is JavaScript insertion order: `message, metadata,
//! postmark` and `encryptionScheme, deliveryInformation, messageHash |
//! encryptedMessageHash, version, signature`, as `buildEnvelop` and the DS's
//! spread build them (§7.2, §8 step 8). A DS parses the text, so any order is
//! understood; writing the reference order makes our requests byte-identical
//! to the messenger's. Fields we do not know follow, in canonical order.
//! Strings and numbers are escaped and printed as `JSON.stringify` does,
//! which is what the canonical writer does too (P2).

use serde_json::{Map, Value};

use super::Envelope;
use crate::canonical;

/// The key order of one object, and of the objects nested in it.
struct Shape {
    order: &'static [&'static str],
    children: &'static [(&'static str, &'static Shape)],
}

const DELIVERY_INFORMATION: Shape = Shape { order: &["to", "from", "deliveryInstruction"], children: &[] };

const METADATA: Shape = Shape {
    order: &[
        "encryptionScheme",
        "deliveryInformation",
        "messageHash",
        "encryptedMessageHash",
        "version",
        "signature",
    ],
    children: &[("deliveryInformation", &DELIVERY_INFORMATION)],
};

const ENVELOPE: Shape =
    Shape { order: &["message", "metadata", "postmark"], children: &[("metadata", &METADATA)] };

impl Envelope {
    /// `JSON.stringify(envelope)` with the reference's key order.
    pub fn to_json(&self) -> String {
        // Room for the message (most of an envelope) and the small rest; measuring exactly
        // would cost a whole canonical serialization.
        let mut out = String::with_capacity(self.message().len() + 4096);
        write_object(&mut out, self.as_map(), &ENVELOPE);
        out
    }

    /// The body the messenger POSTs to `<ds url>/rpc` (§9.1): no `id`, no token.
    pub fn jsonrpc_submit_body(&self) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","method":"dm3_submitMessage","params":[{}]}}"#,
            canonical::stringify_str(&self.to_json())
        )
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>, shape: &Shape) {
    let known = shape.order.iter().filter_map(|key| map.get_key_value(*key));
    // serde_json's map iterates in sorted (byte) order, which equals the
    // canonical UTF-16 order for the ASCII keys that occur in practice.
    let unknown = map.iter().filter(|(key, _)| !shape.order.contains(&key.as_str()));
    out.push('{');
    for (index, (key, value)) in known.chain(unknown).enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&canonical::stringify_str(key));
        out.push(':');
        let child = shape.children.iter().find(|(name, _)| name == key).map(|(_, child)| *child);
        match (value, child) {
            (Value::Object(inner), Some(child)) => write_object(out, inner, child),
            _ => out.push_str(&canonical::stringify(value)),
        }
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;
    use crate::envelope::DeliveryInformation;

    #[test]
    fn writes_reference_order_then_unknown_fields() {
        let envelope = Envelope::from_value(json!({
            "zz": 1,
            "metadata": {"version": "v1", "signature": "s", "x": "\u{2028}", "deliveryInformation": "d",
                         "messageHash": "0x305bd53275b584c77fa27ac507e6abeee91adedcc8405aca7d9da97616947dd0",
                         "encryptionScheme": "e"},
            "message": "m\"",
        }))
        .unwrap();
        assert_eq!(
            envelope.to_json(),
            "{\"message\":\"m\\\"\",\"metadata\":{\"encryptionScheme\":\"e\",\"deliveryInformation\":\"d\",\
             \"messageHash\":\"0x305bd53275b584c77fa27ac507e6abeee91adedcc8405aca7d9da97616947dd0\",\
             \"version\":\"v1\",\"signature\":\"s\",\"x\":\"\u{2028}\"},\"zz\":1}"
        );
        let stored = envelope.to_stored(&DeliveryInformation::new("b", "a"), "p");
        assert!(stored.to_json().contains(r#""deliveryInformation":{"to":"b","from":"a"}"#));
        assert!(stored.to_json().ends_with(r#""postmark":"p","zz":1}"#));
        let body: Value = serde_json::from_str(&envelope.jsonrpc_submit_body()).unwrap();
        assert_eq!(Envelope::from_rpc_param(&body["params"][0]).unwrap(), envelope);
    }
}
