//! Property tests for bridge payloads: any attachment or JSON gives a payload
//! or a typed error, never a panic; what `encode` writes, `decode` and `find`
//! read back unchanged; the allow-lists answer every content with a verdict.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dm3::bridge_payload::{
    self, BridgePayload, MIME_TYPE, MatrixEvent, Network, TelegramCall, decode, encode, find, validate,
};
use dm3::encoding::b64_encode;
use dm3::message::MessageBuilder;
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let number = prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number.prop_map(Value::Number),
        any::<String>().prop_map(Value::String),
        "(mxc|https?|tg)://[a-z.:]{0,6}/[A-Za-z0-9_-]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Objects whose keys are the ones the allow-lists look at, so the checks run
/// deep instead of stopping at the first unknown field.
fn arb_fields(keys: &'static [&'static str]) -> impl Strategy<Value = Map<String, Value>> {
    let value = prop_oneof![
        arb_json(),
        prop::sample::select(keys).prop_map(|key| Value::String(key.to_owned())),
        prop::collection::vec((prop::sample::select(keys), arb_json()), 0..4)
            .prop_map(|entries| Value::Object(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
    ];
    prop::collection::vec((prop::sample::select(keys), value), 0..8)
        .prop_map(|entries| entries.into_iter().map(|(key, value)| (key.to_owned(), value)).collect())
}

const MATRIX_KEYS: &[&str] = &[
    "msgtype",
    "body",
    "format",
    "formatted_body",
    "m.mentions",
    "user_ids",
    "room",
    "filename",
    "url",
    "file",
    "info",
    "mimetype",
    "size",
    "w",
    "h",
    "duration",
    "thumbnail_url",
    "thumbnail_file",
    "thumbnail_info",
    "key",
    "iv",
    "hashes",
    "v",
    "kty",
    "key_ops",
    "alg",
    "k",
    "ext",
    "sha256",
    "algorithm",
    "ciphertext",
    "session_id",
    "m.text",
    "m.image",
    "m.video",
    "m.audio",
    "m.file",
    "org.matrix.custom.html",
    "m.megolm.v1.aes-sha2",
];

const TELEGRAM_KEYS: &[&str] = &[
    "text",
    "parse_mode",
    "entities",
    "caption",
    "caption_entities",
    "type",
    "offset",
    "length",
    "url",
    "language",
    "photo",
    "document",
    "video",
    "audio",
    "duration",
    "width",
    "link_preview_options",
    "is_disabled",
    "HTML",
    "MarkdownV2",
    "bold",
    "text_link",
    "pre",
    "disable_notification",
];

fn arb_payload() -> impl Strategy<Value = BridgePayload> {
    let matrix = (
        prop_oneof![Just("m.room.message".to_owned()), Just("m.room.encrypted".to_owned()), "[a-z.]{1,20}"],
        arb_fields(MATRIX_KEYS),
        any::<bool>(),
    )
        .prop_map(|(event_type, content, encrypted)| {
            BridgePayload::Matrix(MatrixEvent { event_type, content, encrypted })
        });
    let telegram = (
        prop_oneof![
            prop::sample::select(&["sendMessage", "sendPhoto", "sendDocument", "sendVideo", "sendAudio"][..])
                .prop_map(str::to_owned),
            "[a-zA-Z]{1,20}",
        ],
        arb_fields(TELEGRAM_KEYS),
    )
        .prop_map(|(method, parameters)| BridgePayload::Telegram(TelegramCall { method, parameters }));
    prop_oneof![matrix, telegram]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_never_panics_on_any_text(text in any::<String>()) {
        let _ = decode(&text);
        let _ = decode(&format!("data:{MIME_TYPE};base64,{text}"));
        let _ = bridge_payload::is_bridge_payload(&text);
    }

    #[test]
    fn decode_never_panics_on_any_bytes_or_json_inside_the_uri(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        value in arb_json(),
    ) {
        let _ = decode(&format!("data:{MIME_TYPE};base64,{}", b64_encode(&bytes)));
        let uri = format!("data:{MIME_TYPE};base64,{}", b64_encode(value.to_string().as_bytes()));
        prop_assert_eq!(decode(&uri), BridgePayload::from_json(value));
    }

    #[test]
    fn encode_then_decode_and_find_give_the_payload_back(payload in arb_payload()) {
        prop_assert_eq!(BridgePayload::from_json(payload.to_json()), Ok(payload.clone()));
        let uri = encode(&payload).unwrap();
        prop_assert!(bridge_payload::is_bridge_payload(&uri));
        prop_assert_eq!(decode(&uri), Ok(payload.clone()));
        let attachment = bridge_payload::attachment(&payload).unwrap();
        let message = MessageBuilder::new("bob.eth", "alice.eth", 1).text("fallback", Some(vec![attachment]));
        let network = payload.network();
        let other = if network == Network::Matrix { Network::Telegram } else { Network::Matrix };
        prop_assert_eq!(find(&message, network), Ok(Some(payload)));
        prop_assert_eq!(find(&message, other), Ok(None));
    }

    #[test]
    fn the_verdict_a_client_sees_is_the_verdict_the_bridge_reaches(payload in arb_payload()) {
        // The client validates what it encodes; the bridge validates what it decodes.
        let received = decode(&encode(&payload).unwrap()).unwrap();
        prop_assert_eq!(validate(&received), validate(&payload));
    }
}
