//! `data:application/json` URIs, the inline form of DM3 profile text records
//! (docs/protocol.md §4.3 item 1, §4.4, P16).
//!
//! Writing: the offchain resolver publishes `data:application/json,` followed
//! by the canonical JSON, raw and not percent-encoded (`createJsonDataUri`).
//! The reference reader truncates every character of a raw URI to one byte
//! before decoding it as UTF-8 (P16), so non-ASCII JSON would arrive as U+FFFD.
//! Worse, its regex (`,(?<data>.*)$`) does not match across U+2028/U+2029,
//! which canonical JSON leaves raw, so such a record does not parse at all.
//! We therefore write the raw form only when the canonical JSON is ASCII and
//! switch to `;base64` otherwise: the reference base64-decodes to bytes and
//! reads them as UTF-8, which round-trips any text (checked against the npm
//! 1.7.1 `JsonResolver`).
//!
//! Reading is lenient where the reference is strict and harmless, and never
//! more permissive about what the content *is*:
//! - the mime type must be `application/json` (compared case-insensitively,
//!   as RFC 2045 says; the reference compares exactly);
//! - `;base64` and `;charset=<utf-8 label>` are understood in any order;
//!   other parameters are ignored, as the reference ignores an unknown
//!   encoding token; a non-UTF-8 charset is accepted only for ASCII content,
//!   where every ASCII-compatible charset reads the same bytes;
//! - the payload is tried raw first and percent-decoded only if that fails
//!   (the spec allows URL encoding; the reference cannot read it, P16);
//! - the decoded JSON must be an object, as both profile kinds are.
//!
//! Inputs longer than [`MAX_RECORD_BYTES`] are refused before any decoding:
//! a profile is a few hundred bytes, and text records come from the network.

use serde_json::Value;

use crate::canonical;
use crate::encoding::{b64_decode, b64_encode};

/// The largest text record we decode, in bytes. Real profiles are under 1 KiB;
/// 64 KiB leaves room for long delivery-service lists without letting a
/// hostile record make us allocate much.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// The prefix the reference writes (`createJsonDataUri`).
pub const JSON_PREFIX: &str = "data:application/json,";

const BASE64_PREFIX: &str = "data:application/json;base64,";

/// Why a text is not a readable JSON data URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataUriError {
    #[error("the record is {len} bytes long; at most {max} are accepted")]
    TooLarge { len: usize, max: usize },
    #[error("not a data: URI")]
    NotADataUri,
    #[error("the data: URI has no `,` before its payload")]
    MissingComma,
    #[error("the data: URI has mime type `{0}`, not application/json")]
    WrongMimeType(String),
    #[error("the data: URI has charset `{0}`, which cannot carry this content")]
    UnsupportedCharset(String),
    #[error("the data: URI payload is not valid base64")]
    Base64,
    #[error("the data: URI payload is not UTF-8")]
    NotUtf8,
    #[error("the data: URI payload is not JSON")]
    InvalidJson,
    #[error("the data: URI payload is JSON but not a JSON object")]
    NotAnObject,
}

/// The text record for `value`: the reference's raw form when the canonical
/// JSON is ASCII, the `;base64` form otherwise (P16).
pub fn encode_json(value: &Value) -> String {
    let json = canonical::stringify(value);
    if json.is_ascii() {
        format!("{JSON_PREFIX}{json}")
    } else {
        format!("{BASE64_PREFIX}{}", b64_encode(json.as_bytes()))
    }
}

/// Whether `text` starts like a data: URI (the scheme is case-insensitive).
pub fn is_data_uri(text: &str) -> bool {
    text.get(..5).is_some_and(|scheme| scheme.eq_ignore_ascii_case("data:"))
}

/// Reads a `data:application/json` URI into its JSON object.
pub fn decode_json(uri: &str) -> Result<Value, DataUriError> {
    if uri.len() > MAX_RECORD_BYTES {
        return Err(DataUriError::TooLarge { len: uri.len(), max: MAX_RECORD_BYTES });
    }
    if !is_data_uri(uri) {
        return Err(DataUriError::NotADataUri);
    }
    let rest = uri.get(5..).ok_or(DataUriError::NotADataUri)?;
    let (header, payload) = rest.split_once(',').ok_or(DataUriError::MissingComma)?;
    let mut params = header.split(';');
    let mime = params.next().unwrap_or_default();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(DataUriError::WrongMimeType(mime.to_owned()));
    }
    let mut base64 = false;
    for param in params {
        if param.eq_ignore_ascii_case("base64") {
            base64 = true;
        } else if let Some((key, charset)) = param.split_once('=')
            && key.eq_ignore_ascii_case("charset")
        {
            check_charset(charset, payload)?;
        }
    }
    let value = if base64 {
        parse_bytes(&decode_base64(payload)?)?
    } else {
        match serde_json::from_str::<Value>(payload) {
            Ok(value) => value,
            Err(_) if payload.contains('%') => {
                parse_bytes(&percent_decode(payload).ok_or(DataUriError::InvalidJson)?)?
            }
            Err(_) => return Err(DataUriError::InvalidJson),
        }
    };
    if value.is_object() { Ok(value) } else { Err(DataUriError::NotAnObject) }
}

fn parse_bytes(bytes: &[u8]) -> Result<Value, DataUriError> {
    let text = std::str::from_utf8(bytes).map_err(|_| DataUriError::NotUtf8)?;
    serde_json::from_str(text).map_err(|_| DataUriError::InvalidJson)
}

fn check_charset(charset: &str, payload: &str) -> Result<(), DataUriError> {
    const UTF8: [&str; 3] = ["utf-8", "utf8", "unicode-1-1-utf-8"];
    const ASCII_COMPATIBLE: [&str; 8] =
        ["us-ascii", "ascii", "iso-8859-1", "iso8859-1", "latin1", "l1", "windows-1252", "cp1252"];
    let known = |labels: &[&str]| labels.iter().any(|label| label.eq_ignore_ascii_case(charset));
    if known(&UTF8) || (known(&ASCII_COMPATIBLE) && payload.is_ascii()) {
        Ok(())
    } else {
        Err(DataUriError::UnsupportedCharset(charset.to_owned()))
    }
}

pub(crate) fn decode_base64(payload: &str) -> Result<Vec<u8>, DataUriError> {
    if let Ok(bytes) = b64_decode(payload) {
        return Ok(bytes);
    }
    // A percent-encoded or line-wrapped payload: Node's decoder would skip the
    // stray characters; we decode the escapes and drop ASCII whitespace.
    let unescaped = percent_decode(payload).ok_or(DataUriError::Base64)?;
    let compact: String = String::from_utf8(unescaped)
        .map_err(|_| DataUriError::Base64)?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    b64_decode(&compact).map_err(|_| DataUriError::Base64)
}

/// `decodeURIComponent` to bytes: `%XX` escapes, everything else literal
/// (`+` stays `+`). A malformed escape is `None`, as the JS function throws.
pub(crate) fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn ascii_json_is_written_raw_and_read_back() {
        let value = json!({"b": "x,y;z", "a": [1, 2]});
        let uri = encode_json(&value);
        assert_eq!(uri, r#"data:application/json,{"a":[1,2],"b":"x,y;z"}"#);
        assert_eq!(decode_json(&uri).unwrap(), value);
    }

    #[test]
    fn non_ascii_json_is_written_as_base64_and_read_back() {
        let value = json!({"deliveryServices": ["dś.eth"], "note": "ü \u{2028}"});
        let uri = encode_json(&value);
        assert!(uri.starts_with("data:application/json;base64,"), "{uri}");
        assert!(uri.is_ascii());
        assert_eq!(decode_json(&uri).unwrap(), value);
    }

    #[test]
    fn reads_the_forms_the_reference_reads() {
        let expected = json!({"a": "b c"});
        for uri in [
            r#"data:application/json,{"a":"b c"}"#,
            r#"DATA:Application/JSON,{"a":"b c"}"#,
            r#"data:application/json;charset=utf-8,{"a":"b c"}"#,
            r#"data:application/json;charset=US-ASCII,{"a":"b c"}"#,
            "data:application/json;base64,eyJhIjoiYiBjIn0=",
            "data:application/json;charset=utf-8;base64,eyJhIjoiYiBjIn0",
            "data:application/json;base64,eyJhIjoiYiBj%0AIn0%3D",
            "data:application/json;foo,{\"a\":\"b c\"}",
            "data:application/json,%7B%22a%22%3A%22b%20c%22%7D",
        ] {
            assert_eq!(decode_json(uri).unwrap(), expected, "{uri}");
        }
    }

    #[test]
    fn raw_json_wins_over_percent_decoding() {
        // Raw JSON that happens to contain an escape-like sequence stays raw.
        assert_eq!(decode_json(r#"data:application/json,{"a":"%41"}"#).unwrap(), json!({"a": "%41"}));
    }

    #[test]
    fn refuses_what_is_not_a_json_object() {
        assert_eq!(decode_json("data:text/plain,{}"), Err(DataUriError::WrongMimeType("text/plain".into())));
        assert_eq!(decode_json("data:,{}"), Err(DataUriError::WrongMimeType(String::new())));
        assert_eq!(decode_json("data:application/json"), Err(DataUriError::MissingComma));
        assert_eq!(decode_json("https://x/{}"), Err(DataUriError::NotADataUri));
        assert_eq!(decode_json("data:application/json,[1]"), Err(DataUriError::NotAnObject));
        assert_eq!(decode_json("data:application/json,{"), Err(DataUriError::InvalidJson));
        assert_eq!(decode_json("data:application/json,%zz"), Err(DataUriError::InvalidJson));
        assert_eq!(decode_json("data:application/json;base64,*"), Err(DataUriError::Base64));
        assert_eq!(decode_json("data:application/json;base64,/w=="), Err(DataUriError::NotUtf8));
        assert_eq!(
            decode_json("data:application/json;charset=utf-16,{}"),
            Err(DataUriError::UnsupportedCharset("utf-16".into()))
        );
        assert_eq!(
            decode_json("data:application/json;charset=latin1,{\"a\":\"ü\"}"),
            Err(DataUriError::UnsupportedCharset("latin1".into()))
        );
    }

    #[test]
    fn refuses_oversized_records_before_decoding() {
        let big = format!("{JSON_PREFIX}{{\"a\":\"{}\"}}", "x".repeat(MAX_RECORD_BYTES));
        assert_eq!(decode_json(&big), Err(DataUriError::TooLarge { len: big.len(), max: MAX_RECORD_BYTES }));
    }
}
