//! Property tests for the profile, text-record and message parsers: any input
//! gives a value or an error, never a panic; and what we publish reads back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dm3::data_uri;
use dm3::ds_profile::DeliveryServiceProfile;
use dm3::message::{Attachment, Message, MessageBuilder};
use dm3::name::{conversation_id, normalize_ens_name};
use dm3::profile::{SignedUserProfile, UserProfile};
use dm3::profile_link::{ProfileLink, SignedProfileLink};
use dm3::text_record::{Dm3Hash, ProfileRecord};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Arbitrary JSON with awkward strings and numbers, and sometimes the field
/// names the parsers look for, so they get past their first checks.
fn arb_json() -> impl Strategy<Value = Value> {
    let number = prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
    ];
    let text = prop_oneof![any::<String>(), "[\\u{0}-\\u{7f}\\u{2028}\\u{fb01}\\u{1f600}]{0,12}"];
    let key = prop_oneof![
        any::<String>(),
        prop::sample::select(vec![
            "profile",
            "signature",
            "publicEncryptionKey",
            "publicSigningKey",
            "deliveryServices",
            "url",
            "metadata",
            "message",
            "attachments",
            "data",
            "name",
            "to",
            "from",
            "type",
            "timestamp",
            "profileLink",
            "mainId",
            "nonce",
            "issuedAt",
            "expirationTime",
        ])
        .prop_map(str::to_owned),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number.prop_map(Value::Number),
        text.prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Text records: random strings, and random strings behind each known prefix.
fn arb_record() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(vec![
        "",
        "data:application/json,",
        "data:application/json;base64,",
        "data:application/json;charset=latin1,",
        "data:",
        "https://h/?dm3Hash=",
        "http://",
        "ipfs://",
        "{",
    ]);
    (prefix, any::<String>()).prop_map(|(prefix, rest)| format!("{prefix}{rest}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn json_parsers_never_panic(value in arb_json()) {
        let _ = UserProfile::from_value(value.clone());
        let _ = SignedUserProfile::from_value(value.clone());
        let _ = DeliveryServiceProfile::from_value(value.clone());
        let _ = ProfileLink::from_value(value.clone());
        let _ = SignedProfileLink::from_value(value.clone());
        let _ = Attachment::from_value(&value);
        if let Ok(message) = Message::from_value(value.clone()) {
            let _ = message.parsed_attachments();
            let _ = message.signed_string();
        }
        let _ = Dm3Hash::of_json(&value);
    }

    #[test]
    fn text_parsers_never_panic(text in arb_record()) {
        let _ = data_uri::decode_json(&text);
        let _ = ProfileRecord::parse(&text);
        let _ = SignedUserProfile::parse(&text);
        let _ = Message::parse(&text);
        let _ = text.parse::<Dm3Hash>();
        let _ = normalize_ens_name(&text);
        let _ = conversation_id(&text, "alice.eth");
    }

    #[test]
    fn byte_parsers_never_panic(bytes in any::<Vec<u8>>()) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = data_uri::decode_json(&format!("data:application/json;base64,{}", dm3::encoding::b64_encode(&bytes)));
        let _ = ProfileRecord::parse(&text);
        let _ = Message::parse(&text);
    }

    #[test]
    fn published_records_read_back_as_the_same_object(value in arb_json()) {
        let Value::Object(_) = &value else { return Ok(()) };
        let record = data_uri::encode_json(&value);
        prop_assert!(record.is_ascii());
        if record.len() <= data_uri::MAX_RECORD_BYTES {
            let read = data_uri::decode_json(&record).unwrap();
            prop_assert_eq!(dm3::canonical::stringify(&read), dm3::canonical::stringify(&value));
        }
    }

    #[test]
    fn built_messages_parse_back_unchanged(
        to in any::<String>(), from in any::<String>(), text in any::<String>(), timestamp in 0u64..(1 << 53)
    ) {
        let message = MessageBuilder::new(to, from, timestamp).text(&text, Some(vec![Attachment::new(text.clone())]));
        let reparsed = Message::parse(&message.canonical()).unwrap();
        prop_assert_eq!(reparsed.hash(), message.hash());
        prop_assert_eq!(reparsed, message);
    }
}
