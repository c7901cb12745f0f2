//! Property tests for the gateway codec (docs/gateway.md section 1): any bytes or content give
//! an envelope or a named refusal, never a panic; any envelope text, unknown fields and odd
//! characters included, crosses Matrix (re-serialized as a homeserver would) and Telegram
//! unchanged, byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dm3::ens::EnsName;
use dm3::envelope::Envelope;
use dm3::gateway_envelope::matrix::MSGTYPE;
use dm3::gateway_envelope::{GatewayEnvelope, MatrixGatewayContent, TelegramGatewayDocument};
use dm3::keys::ProfileKeys;
use dm3::message::MessageBuilder;
use proptest::prelude::*;
use serde_json::{Value, json};

/// An envelope's wire text, sealed once with fixed keys.
fn sealed_text() -> String {
    let (alice, bob, ds) = (
        ProfileKeys::from_seed(&[1; 32]),
        ProfileKeys::from_seed(&[2; 32]),
        ProfileKeys::from_seed(&[3; 32]),
    );
    let message = MessageBuilder::new("bob.eth", "alice.eth", 1).text("hi", None).sign(&alice.signing);
    Envelope::seal(&message, &alice.signing, bob.encryption.public(), ds.encryption.public())
        .unwrap()
        .to_json()
}

proptest! {
    #[test]
    fn any_file_is_a_document_or_a_named_refusal(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(document) = TelegramGatewayDocument::decode(&bytes) {
            prop_assert!(document.envelope().envelope_text().len() < bytes.len());
        }
    }

    #[test]
    fn any_content_is_an_envelope_or_a_named_refusal(
        version in prop_oneof![Just(json!(1)), any::<i64>().prop_map(Value::from), any::<String>().prop_map(Value::from)],
        ds in any::<String>(),
        envelope in prop_oneof![any::<String>(), Just(sealed_text())],
        extra in any::<String>(),
    ) {
        let content = json!({
            "msgtype": MSGTYPE, "body": extra,
            MSGTYPE: {"version": version, "deliveryService": ds, "envelope": envelope},
        });
        let _ = MatrixGatewayContent::decode(&content);
    }

    #[test]
    fn any_envelope_text_crosses_both_networks_unchanged(
        key in any::<String>(),
        value in any::<String>(),
        number in any::<i32>(),
        around in "[ \t\r\n]{0,3}",
    ) {
        prop_assume!(!["message", "metadata", "postmark"].contains(&key.as_str()));
        let base = sealed_text();
        let inner = &base[..base.len() - 1];
        let key = serde_json::to_string(&key).unwrap();
        let value = serde_json::to_string(&value).unwrap();
        let text = format!("{inner},{key}:{value},\"n\":{number}}}");
        prop_assume!(key != "\"n\"");
        let ds = EnsName::parse("ds.example.eth").unwrap();
        let carried = GatewayEnvelope::new(&format!("{around}{text}{around}"), ds).unwrap();
        prop_assert_eq!(carried.envelope_text(), text.as_str());

        let content = MatrixGatewayContent::encode(carried.clone()).unwrap().to_content();
        let served: Value = serde_json::from_str(&serde_json::to_string_pretty(&content).unwrap()).unwrap();
        let from_matrix = MatrixGatewayContent::decode(&served).unwrap();
        prop_assert_eq!(from_matrix.envelope().envelope_text(), text.as_str());

        let file = TelegramGatewayDocument::encode(carried).unwrap().file();
        let from_telegram = TelegramGatewayDocument::decode(&file).unwrap();
        prop_assert_eq!(from_telegram.envelope().envelope_text(), text.as_str());
    }
}
