//! Property tests: every parser in the envelope, postmark, auth, storage and
//! DS-properties modules returns Ok or Err on any input, never panics; and
//! the reversible mappings round-trip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use dm3::auth::{ChallengeAnswer, parse_token_body, token_body, token_claims_unverified};
use dm3::backend_storage::{decrypt_contact_name, encrypt_contact_name, open_envelope_container};
use dm3::canonical;
use dm3::crypto::asymmetric::EncryptedPayload;
use dm3::crypto::kx::KxKeyPair;
use dm3::crypto::signing::{SigningKeyPair, VerifyKey};
use dm3::ds_properties::{DeliveryServiceProperties, ProfileExtension, parse_rpc_result_body};
use dm3::encoding::{b64_encode, hex_encode};
use dm3::envelope::{DeliveryInformation, Envelope};
use dm3::message::Message;
use dm3::postmark::Postmark;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

struct Keys {
    kx: KxKeyPair,
    signing: SigningKeyPair,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        kx: KxKeyPair::from_seed(&[7; 32]),
        signing: SigningKeyPair::from_seed(&[8; 32]),
    })
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        Just(json!("0x305bd53275b584c77fa27ac507e6abeee91adedcc8405aca7d9da97616947dd0")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            Just("message".to_owned()),
            Just("metadata".to_owned()),
            Just("postmark".to_owned()),
            Just("deliveryInformation".to_owned()),
            Just("messageHash".to_owned()),
            Just("encryptedMessageHash".to_owned()),
            Just("signature".to_owned()),
            Just("version".to_owned()),
            Just("to".to_owned()),
            Just("from".to_owned()),
            "[a-zA-Z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((keys, inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Strings shaped like `stringify(EncryptedPayload)` with random contents.
fn arb_payload_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(any::<u8>(), 0..80),
        prop_oneof![prop::collection::vec(any::<u8>(), 32..=32), prop::collection::vec(any::<u8>(), 0..40)],
        prop_oneof![prop::collection::vec(any::<u8>(), 12..=12), prop::collection::vec(any::<u8>(), 0..16)],
        ".{0,4}",
    )
        .prop_map(|(ciphertext, ephemeral, nonce, junk)| {
            let mut value = json!({
                "ciphertext": b64_encode(&ciphertext),
                "ephemPublicKey": b64_encode(&ephemeral),
                "nonce": hex_encode(&nonce),
            });
            if !junk.is_empty() {
                value["nonce"] = Value::from(junk);
            }
            canonical::stringify(&value)
        })
}

fn exercise_envelope(envelope: &Envelope) {
    let key = VerifyKey::from_bytes(&keys().signing.public()).unwrap();
    let _ = envelope.open(&keys().kx);
    let _ = envelope.delivery_information(&keys().kx);
    let _ = envelope.verify_metadata(&key);
    let _ = Postmark::open_envelope(envelope, &keys().kx);
    let _ = envelope.size();
    // JSON.stringify order and canonical order describe the same object; numbers
    // compare as JavaScript sees them, through the canonical form.
    let canonical = canonical::stringify(&envelope.to_value());
    let reparsed = Envelope::parse(&envelope.to_json()).unwrap();
    assert_eq!(canonical::stringify(&reparsed.to_value()), canonical, "to_json round-trips");
    let body: Value = serde_json::from_str(&envelope.jsonrpc_submit_body()).unwrap();
    let submitted = Envelope::from_rpc_param(&body["params"][0]).unwrap();
    assert_eq!(canonical::stringify(&submitted.to_value()), canonical);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn any_json_value_is_handled(value in arb_json()) {
        if let Ok(envelope) = Envelope::from_value(value.clone()) {
            exercise_envelope(&envelope);
        }
        let _ = Envelope::from_rpc_param(&value);
        let _ = DeliveryInformation::from_value(value.clone());
        let _ = Postmark::from_value(value.clone());
        let _ = EncryptedPayload::from_value(&value);
        let _ = DeliveryServiceProperties::from_value(&value);
        let _ = ProfileExtension::from_value(&value);
        let _ = ChallengeAnswer::parse(&value.to_string());
        let _ = parse_rpc_result_body(&value.to_string());
        let _ = parse_token_body(&value.to_string());
    }

    #[test]
    fn any_text_is_handled(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = Envelope::parse(&text);
        let _ = EncryptedPayload::parse(&text);
        let _ = Postmark::parse(&text);
        let _ = Postmark::open(&text, &keys().kx);
        let _ = DeliveryInformation::parse(&text);
        let _ = decrypt_contact_name(&keys().kx, &text);
        let _ = open_envelope_container(&keys().kx, &text);
        let _ = token_claims_unverified(&text);
        let _ = ChallengeAnswer::parse(&text);
        let _ = DeliveryServiceProperties::from_rpc_response_body(&text);
        let _ = ProfileExtension::from_rpc_response_body(&text);
    }

    #[test]
    fn envelope_shaped_input_with_random_ciphertexts_is_an_error(
        message in arb_payload_text(),
        delivery in arb_payload_text(),
        postmark in arb_payload_text(),
        signature in prop::collection::vec(any::<u8>(), 0..70),
        npm in any::<bool>(),
    ) {
        let hash_field = if npm { "encryptedMessageHash" } else { "messageHash" };
        let value = json!({
            "message": message,
            "metadata": {
                "encryptionScheme": "x25519-chacha20-poly1305",
                "deliveryInformation": delivery,
                hash_field: hex_encode(&[1u8; 32]),
                "version": "v1",
                "signature": b64_encode(&signature),
            },
            "postmark": postmark,
        });
        let envelope = Envelope::from_value(value).unwrap();
        prop_assert!(envelope.open(&keys().kx).is_err());
        prop_assert!(envelope.delivery_information(&keys().kx).is_err());
        prop_assert!(Postmark::open_envelope(&envelope, &keys().kx).is_err());
        exercise_envelope(&envelope);
    }

    #[test]
    fn token_bodies_round_trip(token in ".{0,40}") {
        prop_assert_eq!(parse_token_body(&token_body(&token)).unwrap(), token);
    }
}

proptest! {
    // Each case seals and opens 2 KB blocks; fewer cases keep the debug build quick.
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn sealed_messages_open_to_themselves(text in ".{0,300}", to in "[a-z]{1,10}\\.eth", timestamp in 0u64..1u64 << 50) {
        let mut value = json!({"message": text, "metadata": {"to": to, "from": "a.eth", "timestamp": timestamp, "type": "NEW"}});
        value["signature"] = json!(keys().signing.sign_b64(&canonical::stringify(&value)));
        let message = Message::from_value(value).unwrap();
        let envelope = Envelope::seal(&message, &keys().signing, keys().kx.public(), keys().kx.public()).unwrap();
        let opened = envelope.open(&keys().kx).unwrap();
        prop_assert_eq!(opened.message_hash, message.hash());
        prop_assert_eq!(opened.message, message);
        let delivery = envelope.delivery_information(&keys().kx).unwrap();
        prop_assert_eq!(delivery.to(), to.as_str());
        exercise_envelope(&envelope);
    }

    #[test]
    fn contact_names_round_trip(owner in ".{0,20}", contact in ".{0,40}") {
        let encrypted = encrypt_contact_name(&keys().kx, &owner, &contact);
        prop_assert_eq!(decrypt_contact_name(&keys().kx, &encrypted).unwrap(), contact);
    }
}
