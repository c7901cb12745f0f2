//! Property tests for the core parsers: any input gives a value or an error, never a panic,
//! and canonical JSON is a fixed point of parse → stringify.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dm3::canonical::stringify;
use dm3::crypto::asymmetric::{self, EncryptedPayload};
use dm3::crypto::eth::{EthSignature, parse_address};
use dm3::crypto::kx::KxKeyPair;
use dm3::crypto::signing::{SigningKeyPair, VerifyKey};
use dm3::encoding::{b64_decode, hex_decode};
use dm3::message::{Message, MessageHash};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Arbitrary JSON values with awkward strings and numbers.
pub fn arb_json() -> impl Strategy<Value = Value> {
    let number = prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
    ];
    let text = prop_oneof![any::<String>(), "[\\u{0}-\\u{7f}\\u{2028}\\u{fb01}\\u{1f600}]{0,12}"];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number.prop_map(Value::Number),
        text.prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn canonical_form_is_a_fixed_point(value in arb_json()) {
        let once = stringify(&value);
        let reparsed: Value = serde_json::from_str(&once).unwrap();
        prop_assert_eq!(stringify(&reparsed), once);
    }

    #[test]
    fn text_decoders_never_panic(text in any::<String>()) {
        let _ = b64_decode(&text);
        let _ = hex_decode(&text);
        let _ = EthSignature::parse(&text);
        let _ = parse_address(&text);
        let _ = VerifyKey::from_b64(&text);
        let _ = SigningKeyPair::from_secret_b64(&text);
        let _ = KxKeyPair::from_secret_b64(&text);
        let _ = EncryptedPayload::parse(&text);
        let _ = Message::parse(&text);
        let _ = text.parse::<MessageHash>();
    }

    #[test]
    fn json_decoders_never_panic(value in arb_json()) {
        let _ = EncryptedPayload::from_value(&value);
        let _ = Message::from_value(value);
    }

    #[test]
    fn decrypting_garbage_is_an_error(ciphertext in any::<Vec<u8>>(), ephemeral in any::<[u8; 32]>(), nonce in any::<[u8; 12]>()) {
        let own = KxKeyPair::generate();
        let payload = EncryptedPayload {
            ciphertext: dm3::encoding::b64_encode(&ciphertext),
            ephem_public_key: dm3::encoding::b64_encode(&ephemeral),
            nonce: dm3::encoding::hex_encode(&nonce),
        };
        prop_assert!(asymmetric::decrypt(&own, &payload).is_err());
    }
}
