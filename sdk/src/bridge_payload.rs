//! Bridge payloads: content a DM3 client has already encoded for the network a
//! bridge forwards to, carried as one DM3 attachment (`docs/bridge-payload.md`).
//!
//! Why it is shaped this way:
//! - It rides in `message.attachments` as a `data:` URI with its own MIME type,
//!   [`MIME_TYPE`], always base64. The reference messenger shows any attachment
//!   that is not an image as a file chip with its `name` and lets the user save
//!   it, so a stock client degrades to "a small JSON file next to the text".
//!   It names a file without a `name` after the text between `/` and
//!   `;base64`, which is why the base64 form is the only one.
//! - The JSON inside names its format version and target network and carries
//!   the network's own vocabulary untouched (Matrix: event `type` and
//!   `content`; Telegram: Bot API method and parameters) as `serde_json`
//!   values. The SDK knows no network crate, and the bridge forwards what the
//!   sender signed, not a re-serialized struct.
//! - Reading is split in two. [`decode`] checks the envelope (size, URI,
//!   version, network, shapes) and never looks inside the content, because the
//!   reverse direction (the original Matrix event content riding along to a
//!   DM3 reader) carries content no allow-list describes. [`validate`] asks
//!   whether a bridge may forward the payload: an allow-list per network
//!   (`matrix.rs`, `telegram.rs`) that refuses with a named reason rather than
//!   stripping what it does not know.
//!
//! Every input is bounded before it is decoded: [`MAX_URI_BYTES`] for the
//! attachment, [`MAX_JSON_BYTES`] for the JSON, which fits a Matrix event
//! (65,536 bytes including the server's envelope) with room to spare.

mod allow_list;
mod matrix;
mod telegram;

pub use allow_list::Rejection;

use serde_json::{Map, Value};

use crate::encoding::{b64_decode, b64_encode};
use crate::message::{Attachment, Message};

/// The MIME type of a bridge-payload attachment.
pub const MIME_TYPE: &str = "application/vnd.dm3.bridge-payload+json";

/// The format version this SDK reads and writes.
pub const VERSION: u64 = 1;

/// The file name a stock client shows for the attachment.
pub const ATTACHMENT_NAME: &str = "bridge-payload.json";

/// The largest payload JSON, in bytes (UTF-8, before base64).
pub const MAX_JSON_BYTES: usize = 48 * 1024;

/// The longest attachment URI read: the prefix, the base64 of the largest JSON,
/// and room for a `;charset=utf-8` parameter.
pub const MAX_URI_BYTES: usize = URI_PREFIX.len() + MAX_JSON_BYTES.div_ceil(3) * 4 + 64;

const URI_PREFIX: &str = "data:application/vnd.dm3.bridge-payload+json;base64,";

/// Longest Matrix event type (the spec's limit on event type strings).
const MAX_EVENT_TYPE_BYTES: usize = 255;

/// Longest Telegram method name; the real ones are under 40.
const MAX_METHOD_BYTES: usize = 64;

/// The network a payload is encoded for: the crate's one [`Network`](crate::network::Network).
pub use crate::network::Network;

/// A Matrix room event as the client-server API sends it: `PUT
/// /rooms/{roomId}/send/{type}/{txnId}` with `content` as the body.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixEvent {
    pub event_type: String,
    pub content: Map<String, Value>,
    /// The sender says this is ciphertext a client prepared (`m.room.encrypted`),
    /// which the bridge forwards without being able to read it.
    pub encrypted: bool,
}

/// A Telegram Bot API call: the method and its JSON parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct TelegramCall {
    pub method: String,
    pub parameters: Map<String, Value>,
}

/// The content of one bridge payload, for one network.
#[derive(Debug, Clone, PartialEq)]
pub enum BridgePayload {
    Matrix(MatrixEvent),
    Telegram(TelegramCall),
}

/// Why an attachment is not a readable bridge payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the bridge payload is {len} bytes long; at most {max} are accepted")]
    TooLarge { len: usize, max: usize },
    #[error("not a data: URI")]
    NotADataUri,
    #[error("the data: URI has no `,` before its payload")]
    MissingComma,
    #[error("the data: URI has mime type `{0}`, not {MIME_TYPE}")]
    WrongMimeType(String),
    #[error("the data: URI has parameter `{0}`; only `base64` and `charset=utf-8` are allowed")]
    UnexpectedParameter(String),
    #[error("a bridge payload must be base64-encoded (`;base64`)")]
    NotBase64Encoded,
    #[error("the data: URI payload is not valid base64")]
    Base64,
    #[error("the bridge payload is not UTF-8")]
    NotUtf8,
    #[error("the bridge payload is not JSON")]
    InvalidJson,
    #[error("the bridge payload is JSON but not a JSON object")]
    NotAnObject,
    #[error("bridge payload field `{field}` is missing or is not {expected}")]
    Field { field: &'static str, expected: &'static str },
    #[error("bridge payload version {0} is not supported; this reader knows version {VERSION}")]
    UnsupportedVersion(u64),
    #[error("unknown bridge payload network `{0}`; expected matrix or telegram")]
    UnknownNetwork(String),
    #[error("unknown bridge payload field `{0}`")]
    UnknownField(String),
    #[error("{0} cannot carry encrypted content, so its payloads cannot be marked encrypted")]
    EncryptionNotSupported(Network),
}

/// Why a payload cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("the bridge payload JSON is {len} bytes long; at most {max} are allowed")]
    TooLarge { len: usize, max: usize },
}

/// Why a message's bridge payload for a network cannot be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindError {
    #[error("attachment {index} is a bridge payload that cannot be read: {error}")]
    Decode { index: usize, error: DecodeError },
    #[error("the message carries more than one bridge payload for {0}")]
    MoreThanOne(Network),
}

impl BridgePayload {
    /// The network this payload is for.
    pub fn network(&self) -> Network {
        match self {
            Self::Matrix(_) => Network::Matrix,
            Self::Telegram(_) => Network::Telegram,
        }
    }

    /// The payload JSON: `{version, network, type, content, encrypted?}` or
    /// `{version, network, method, parameters}`. `encrypted` is written only when true.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("version".into(), VERSION.into());
        object.insert("network".into(), self.network().as_str().into());
        match self {
            Self::Matrix(event) => {
                object.insert("type".into(), event.event_type.clone().into());
                object.insert("content".into(), Value::Object(event.content.clone()));
                if event.encrypted {
                    object.insert("encrypted".into(), true.into());
                }
            }
            Self::Telegram(call) => {
                object.insert("method".into(), call.method.clone().into());
                object.insert("parameters".into(), Value::Object(call.parameters.clone()));
            }
        }
        Value::Object(object)
    }

    /// Reads the payload JSON, checking its envelope but not its content.
    pub fn from_json(value: Value) -> Result<Self, DecodeError> {
        let Value::Object(mut object) = value else {
            return Err(DecodeError::NotAnObject);
        };
        match object.get("version").map(Value::as_u64) {
            Some(Some(VERSION)) => {}
            Some(Some(other)) => return Err(DecodeError::UnsupportedVersion(other)),
            _ => return Err(DecodeError::Field { field: "version", expected: "the integer 1" }),
        }
        let network_name = object
            .get("network")
            .and_then(Value::as_str)
            .ok_or(DecodeError::Field { field: "network", expected: "a string" })?;
        let network: Network =
            network_name.parse().map_err(|_| DecodeError::UnknownNetwork(excerpt(network_name)))?;
        let encrypted = match object.get("encrypted") {
            None => false,
            Some(value) => {
                value.as_bool().ok_or(DecodeError::Field { field: "encrypted", expected: "a boolean" })?
            }
        };
        let own_fields = match network {
            Network::Matrix => ["type", "content"],
            Network::Telegram => ["method", "parameters"],
        };
        if let Some(unknown) = object.keys().find(|key| {
            !["version", "network", "encrypted"].contains(&key.as_str())
                && !own_fields.contains(&key.as_str())
        }) {
            return Err(DecodeError::UnknownField(excerpt(unknown)));
        }
        match network {
            Network::Matrix => {
                let event_type = take_name(&mut object, "type", MAX_EVENT_TYPE_BYTES)?;
                let content = take_object(&mut object, "content")?;
                Ok(Self::Matrix(MatrixEvent { event_type, content, encrypted }))
            }
            Network::Telegram => {
                if encrypted {
                    return Err(DecodeError::EncryptionNotSupported(Network::Telegram));
                }
                let method = take_name(&mut object, "method", MAX_METHOD_BYTES)?;
                let parameters = take_object(&mut object, "parameters")?;
                Ok(Self::Telegram(TelegramCall { method, parameters }))
            }
        }
    }
}

fn take_name(
    object: &mut Map<String, Value>,
    field: &'static str,
    max: usize,
) -> Result<String, DecodeError> {
    match object.remove(field) {
        Some(Value::String(name)) if !name.is_empty() && name.len() <= max => Ok(name),
        _ => Err(DecodeError::Field { field, expected: "a non-empty string of bounded length" }),
    }
}

fn take_object(
    object: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Map<String, Value>, DecodeError> {
    match object.remove(field) {
        Some(Value::Object(inner)) => Ok(inner),
        _ => Err(DecodeError::Field { field, expected: "a JSON object" }),
    }
}

/// The attachment URI for `payload`:
/// `data:application/vnd.dm3.bridge-payload+json;base64,` and the base64 of its
/// JSON (keys sorted, no whitespace, numbers as given).
pub fn encode(payload: &BridgePayload) -> Result<String, EncodeError> {
    let json = payload.to_json().to_string();
    if json.len() > MAX_JSON_BYTES {
        return Err(EncodeError::TooLarge { len: json.len(), max: MAX_JSON_BYTES });
    }
    Ok(format!("{URI_PREFIX}{}", b64_encode(json.as_bytes())))
}

/// The attachment to put in `message.attachments`: `{name, data}` with
/// [`ATTACHMENT_NAME`], so a stock client shows a readable file name.
pub fn attachment(payload: &BridgePayload) -> Result<Attachment, EncodeError> {
    Ok(Attachment::named(ATTACHMENT_NAME, encode(payload)?))
}

/// Whether an attachment URI claims to be a bridge payload (its MIME type,
/// compared case-insensitively). Cheap: reads only the URI's header.
pub fn is_bridge_payload(uri: &str) -> bool {
    let Some(rest) = strip_data_scheme(uri) else {
        return false;
    };
    let mime_end = rest.find([';', ',']).unwrap_or(rest.len());
    rest.get(..mime_end).is_some_and(|mime| mime.eq_ignore_ascii_case(MIME_TYPE))
}

/// Reads a bridge-payload attachment URI.
pub fn decode(uri: &str) -> Result<BridgePayload, DecodeError> {
    if uri.len() > MAX_URI_BYTES {
        return Err(DecodeError::TooLarge { len: uri.len(), max: MAX_URI_BYTES });
    }
    let rest = strip_data_scheme(uri).ok_or(DecodeError::NotADataUri)?;
    let (header, data) = rest.split_once(',').ok_or(DecodeError::MissingComma)?;
    let mut parameters = header.split(';');
    let mime = parameters.next().unwrap_or_default();
    if !mime.eq_ignore_ascii_case(MIME_TYPE) {
        return Err(DecodeError::WrongMimeType(excerpt(mime)));
    }
    let mut base64 = false;
    for parameter in parameters {
        if parameter.eq_ignore_ascii_case("base64") {
            base64 = true;
        } else if !is_utf8_charset(parameter) {
            return Err(DecodeError::UnexpectedParameter(excerpt(parameter)));
        }
    }
    if !base64 {
        return Err(DecodeError::NotBase64Encoded);
    }
    let bytes = b64_decode(data).map_err(|_| DecodeError::Base64)?;
    if bytes.len() > MAX_JSON_BYTES {
        return Err(DecodeError::TooLarge { len: bytes.len(), max: MAX_JSON_BYTES });
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| DecodeError::NotUtf8)?;
    // serde_json's recursion limit turns deep nesting into an error, not a stack overflow.
    let value: Value = serde_json::from_str(text).map_err(|_| DecodeError::InvalidJson)?;
    BridgePayload::from_json(value)
}

/// The message's bridge payload for `network`, if it carries one.
///
/// Payloads for other networks are skipped (a client may cover both); one
/// that claims the MIME type but does not decode is an error, as are two for
/// the same network, since the bridge could not tell which one the sender meant.
pub fn find(message: &Message, network: Network) -> Result<Option<BridgePayload>, FindError> {
    let mut found = None;
    for (index, entry) in message.attachments().into_iter().flatten().enumerate() {
        // The URI without cloning the entry: attachments can be megabytes of data: URIs.
        let uri = match entry {
            Value::String(uri) => uri.as_str(),
            Value::Object(object) => object.get("data").and_then(Value::as_str).unwrap_or_default(),
            _ => continue,
        };
        if !is_bridge_payload(uri) {
            continue;
        }
        let payload = decode(uri).map_err(|error| FindError::Decode { index, error })?;
        if payload.network() != network {
            continue;
        }
        if found.is_some() {
            return Err(FindError::MoreThanOne(network));
        }
        found = Some(payload);
    }
    Ok(found)
}

/// Whether a bridge may forward `payload` to its network verbatim: the
/// allow-list of `docs/bridge-payload.md`, with the first reason it fails.
pub fn validate(payload: &BridgePayload) -> Result<(), Rejection> {
    match payload {
        BridgePayload::Matrix(event) => matrix::validate(event),
        BridgePayload::Telegram(call) => telegram::validate(call),
    }
}

fn strip_data_scheme(uri: &str) -> Option<&str> {
    let scheme = uri.get(..5)?;
    if scheme.eq_ignore_ascii_case("data:") { uri.get(5..) } else { None }
}

fn is_utf8_charset(parameter: &str) -> bool {
    parameter.split_once('=').is_some_and(|(key, value)| {
        key.eq_ignore_ascii_case("charset")
            && (value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8"))
    })
}

/// At most 64 characters of untrusted text, for error messages and logs.
fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;
    use crate::message::MessageBuilder;

    fn text_event() -> BridgePayload {
        let content = json!({"msgtype": "m.text", "body": "hi *there*", "format": "org.matrix.custom.html", "formatted_body": "hi <em>there</em>"});
        BridgePayload::Matrix(MatrixEvent {
            event_type: "m.room.message".into(),
            content: content.as_object().unwrap().clone(),
            encrypted: false,
        })
    }

    fn telegram_text() -> BridgePayload {
        BridgePayload::Telegram(TelegramCall {
            method: "sendMessage".into(),
            parameters: json!({"text": "hi"}).as_object().unwrap().clone(),
        })
    }

    #[test]
    fn encodes_as_a_base64_data_uri_of_sorted_json_and_reads_it_back() {
        let payload = text_event();
        let uri = encode(&payload).unwrap();
        assert!(uri.starts_with("data:application/vnd.dm3.bridge-payload+json;base64,"), "{uri}");
        let json = b64_decode(uri.split_once(',').unwrap().1).unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"content":{"body":"hi *there*","format":"org.matrix.custom.html","formatted_body":"hi <em>there</em>","msgtype":"m.text"},"network":"matrix","type":"m.room.message","version":1}"#
        );
        assert_eq!(decode(&uri).unwrap(), payload);
        assert_eq!(
            attachment(&payload).unwrap().to_value(),
            json!({"name": "bridge-payload.json", "data": uri})
        );
    }

    #[test]
    fn reads_case_insensitive_headers_and_a_utf8_charset() {
        let data = b64_encode(telegram_text().to_json().to_string().as_bytes());
        for uri in [
            format!("DATA:Application/VND.dm3.Bridge-Payload+JSON;BASE64,{data}"),
            format!("data:application/vnd.dm3.bridge-payload+json;charset=UTF-8;base64,{data}"),
        ] {
            assert!(is_bridge_payload(&uri));
            assert_eq!(decode(&uri).unwrap(), telegram_text(), "{uri}");
        }
    }

    #[test]
    fn refuses_malformed_uris_with_named_reasons() {
        let json = b64_encode(br#"{"version":1}"#);
        let cases = [
            ("https://example.org/x".to_owned(), DecodeError::NotADataUri),
            (format!("data:{MIME_TYPE};base64"), DecodeError::MissingComma),
            (
                format!("data:application/json;base64,{json}"),
                DecodeError::WrongMimeType("application/json".into()),
            ),
            (format!("data:{MIME_TYPE},{{}}"), DecodeError::NotBase64Encoded),
            (
                format!("data:{MIME_TYPE};foo=bar;base64,{json}"),
                DecodeError::UnexpectedParameter("foo=bar".into()),
            ),
            (format!("data:{MIME_TYPE};base64,*"), DecodeError::Base64),
            (format!("data:{MIME_TYPE};base64,/w=="), DecodeError::NotUtf8),
            (format!("data:{MIME_TYPE};base64,{}", b64_encode(b"{")), DecodeError::InvalidJson),
            (format!("data:{MIME_TYPE};base64,{}", b64_encode(b"[1]")), DecodeError::NotAnObject),
        ];
        for (uri, expected) in cases {
            assert_eq!(decode(&uri), Err(expected), "{uri}");
        }
    }

    #[test]
    fn refuses_oversized_input_before_and_after_base64() {
        let long = format!("{URI_PREFIX}{}", "A".repeat(MAX_URI_BYTES));
        assert_eq!(decode(&long), Err(DecodeError::TooLarge { len: long.len(), max: MAX_URI_BYTES }));
        let big = vec![b' '; MAX_JSON_BYTES + 1];
        let uri = format!("data:{MIME_TYPE};charset=utf-8;base64,{}", b64_encode(&big));
        assert!(uri.len() <= MAX_URI_BYTES);
        assert_eq!(decode(&uri), Err(DecodeError::TooLarge { len: big.len(), max: MAX_JSON_BYTES }));
        let BridgePayload::Matrix(mut event) = text_event() else { unreachable!() };
        event.content.insert("body".into(), "x".repeat(MAX_JSON_BYTES).into());
        assert!(matches!(encode(&BridgePayload::Matrix(event)), Err(EncodeError::TooLarge { .. })));
    }

    #[test]
    fn refuses_envelopes_that_are_not_version_1_matrix_or_telegram() {
        let decode_json = |value: Value| BridgePayload::from_json(value);
        let matrix = |extra: Value| {
            let mut base =
                json!({"version": 1, "network": "matrix", "type": "m.room.message", "content": {}});
            base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            base
        };
        assert_eq!(decode_json(matrix(json!({"version": 2}))), Err(DecodeError::UnsupportedVersion(2)));
        assert!(matches!(
            decode_json(matrix(json!({"version": "1"}))),
            Err(DecodeError::Field { field: "version", .. })
        ));
        assert_eq!(
            decode_json(matrix(json!({"network": "irc"}))),
            Err(DecodeError::UnknownNetwork("irc".into()))
        );
        assert!(matches!(
            decode_json(matrix(json!({"type": ""}))),
            Err(DecodeError::Field { field: "type", .. })
        ));
        assert!(matches!(
            decode_json(matrix(json!({"content": []}))),
            Err(DecodeError::Field { field: "content", .. })
        ));
        assert!(matches!(
            decode_json(matrix(json!({"encrypted": 1}))),
            Err(DecodeError::Field { field: "encrypted", .. })
        ));
        assert_eq!(
            decode_json(matrix(json!({"method": "x"}))),
            Err(DecodeError::UnknownField("method".into()))
        );
        assert_eq!(
            decode_json(
                json!({"version": 1, "network": "telegram", "method": "sendMessage", "parameters": {}, "encrypted": true})
            ),
            Err(DecodeError::EncryptionNotSupported(Network::Telegram))
        );
        let explicit_false = decode_json(matrix(json!({"encrypted": false}))).unwrap();
        assert_eq!(explicit_false.to_json(), matrix(json!({})), "false is the default and is not written");
    }

    #[test]
    fn find_picks_the_payload_for_the_network_and_refuses_ambiguity() {
        let builder = MessageBuilder::new("tg-1.bridge.eth", "alice.eth", 1);
        let image = Attachment::named("a.png", "data:image/png;base64,iVBO");
        let matrix = attachment(&text_event()).unwrap();
        let telegram = Attachment::Uri(encode(&telegram_text()).unwrap()); // a legacy bare string
        let message = builder.text("hi", Some(vec![image.clone(), matrix.clone(), telegram.clone()]));
        assert_eq!(find(&message, Network::Matrix), Ok(Some(text_event())));
        assert_eq!(find(&message, Network::Telegram), Ok(Some(telegram_text())));
        assert_eq!(find(&builder.text("hi", Some(vec![image.clone()])), Network::Matrix), Ok(None));
        assert_eq!(find(&builder.text("hi", None), Network::Matrix), Ok(None));
        let twice = builder.text("hi", Some(vec![matrix.clone(), matrix]));
        assert_eq!(find(&twice, Network::Matrix), Err(FindError::MoreThanOne(Network::Matrix)));
        let broken =
            builder.text("hi", Some(vec![image, Attachment::new(format!("data:{MIME_TYPE};base64,*"))]));
        assert_eq!(
            find(&broken, Network::Telegram),
            Err(FindError::Decode { index: 1, error: DecodeError::Base64 })
        );
    }

    #[test]
    fn excerpts_cut_long_untrusted_text() {
        assert_eq!(excerpt("short"), "short");
        let long = "ü".repeat(100);
        assert_eq!(excerpt(&long).chars().count(), 65);
    }
}
