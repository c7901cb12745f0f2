//! Canonical JSON, exactly as `safe-stable-stringify` 2.4.3 prints it (docs/protocol.md P2).
//!
//! Every DM3 signature and hash covers this serialization of the *parsed*
//! object, unknown fields included, so it must match the reference to the
//! byte:
//! - object keys sorted recursively by UTF-16 code units (JavaScript's default
//!   `Array.prototype.sort`), which differs from byte order for astral
//!   characters;
//! - no whitespace;
//! - strings escaped as `JSON.stringify` does: `\" \\ \b \f \n \r \t`, other C0
//!   controls as lowercase `\u00xx`, everything else (DEL, U+2028) raw;
//! - numbers printed as ECMAScript's `Number.prototype.toString` prints the
//!   nearest double: `1e+21`, `1`, `0.1`, `-0` as `0`.
//!
//! Input is a [`serde_json::Value`], never a typed struct, so nothing the
//! sender signed can be dropped or reordered on the way. The workspace enables
//! serde_json's `float_roundtrip`, so number parsing rounds exactly as
//! `JSON.parse` does.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

/// The canonical serialization of `value`.
pub fn stringify(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write_value(&mut out, value);
    out
}

/// The canonical serialization of a JSON object.
pub fn stringify_object(map: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(256);
    write_object(&mut out, map);
    out
}

/// `stringify` of a JSON string: the quoted, escaped text (P3).
pub fn stringify_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    write_string(&mut out, text);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(out, number),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|(a, _), (b, _)| utf16_order(a, b));
    out.push('{');
    for (index, (key, item)) in entries.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, item);
    }
    out.push('}');
}

/// JavaScript compares strings by UTF-16 code units, not by code points.
fn utf16_order(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

fn write_number(out: &mut String, number: &Number) {
    // JSON.parse turns every number into a double; print that double the way
    // JavaScript does. Integers beyond 2^53 therefore lose precision, as in JS.
    let Some(double) = number.as_f64() else {
        out.push_str("null");
        return;
    };
    if !double.is_finite() {
        out.push_str("null");
        return;
    }
    if double == 0.0 {
        // ryu-js prints -0 as "0" already; keep the intent explicit.
        out.push('0');
        return;
    }
    let mut buffer = ryu_js::Buffer::new();
    out.push_str(buffer.format_finite(double));
}

fn write_string(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('"');
    let bytes = text.as_bytes();
    let mut plain_start = 0;
    let mut index = 0;
    while index < bytes.len() {
        // Envelopes are mostly long runs of base64 with nothing to escape: skip those eight
        // bytes at a time, and look at single bytes only around the few that need escaping.
        if let Some(Ok(word)) = bytes.get(index..index + 8).map(<[u8; 8]>::try_from)
            && !may_need_escape(u64::from_le_bytes(word))
        {
            index += 8;
            continue;
        }
        let byte = bytes[index];
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => {
                index += 1;
                continue;
            }
        };
        // Escaped bytes are ASCII, so `index` is a character boundary.
        out.push_str(&text[plain_start..index]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        index += 1;
        plain_start = index;
    }
    out.push_str(&text[plain_start..]);
    out.push('"');
}

/// Whether any of the eight bytes in `word` is `"`, `\` or below 0x20 (the classic
/// "has a byte less than n" and "has a zero byte" bit tricks; exact for n ≤ 128).
fn may_need_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let has_zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH_BITS;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH_BITS;
    let quote = has_zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero_byte(word ^ (ONES * u64::from(b'\\')));
    control | quote | backslash != 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn canon(text: &str) -> String {
        stringify(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn sorts_keys_recursively_without_whitespace() {
        assert_eq!(
            canon(r#"{ "b": 1, "a": { "d": [ 3, {"z":0,"y":null} ], "c": true } }"#),
            r#"{"a":{"c":true,"d":[3,{"y":null,"z":0}]},"b":1}"#
        );
    }

    #[test]
    fn sorts_by_utf16_code_units() {
        // U+FB01 is above the surrogate range, U+1F600 is encoded as D83D DE00:
        // by code points the ligature sorts first, by UTF-16 units it sorts last.
        assert_eq!(
            canon(r#"{"\uFB01":1,"😀":2,"10":3,"9":4}"#),
            "{\"10\":3,\"9\":4,\"😀\":2,\"\u{fb01}\":1}"
        );
    }

    #[test]
    fn prints_numbers_as_javascript() {
        assert_eq!(
            canon("[1.0, -0, 1e21, 1E+20, 0.1e-6, 1e-7, 5e-324]"),
            "[1,0,1e+21,100000000000000000000,1e-7,1e-7,5e-324]"
        );
        assert_eq!(
            canon("[123456789012345678901234567890, 0.000001, 1.7976931348623157e308]"),
            "[1.2345678901234568e+29,0.000001,1.7976931348623157e+308]"
        );
        assert_eq!(
            canon("[9007199254740993, 18446744073709551615, -12.5]"),
            "[9007199254740992,18446744073709552000,-12.5]"
        );
    }

    #[test]
    fn escapes_strings_as_json_stringify() {
        assert_eq!(
            canon(r#""q\" b\\ \b\f\n\r\t \u0001\u001F \u007f \u2028 \/ ü""#),
            "\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u0001\\u001f \u{7f} \u{2028} / ü\""
        );
        assert_eq!(stringify_str("{\"a\":1}"), r#""{\"a\":1}""#);
    }

    /// The byte-at-a-time definition the word-at-a-time writer must match.
    fn escape_slowly(text: &str) -> String {
        let mut out = String::from("\"");
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn escapes_at_every_position_of_a_word() {
        for special in ['"', '\\', '\n', '\u{0}', '\u{1f}', ' ', '\u{7f}', 'ü', '\u{2028}'] {
            for position in 0..24 {
                let mut text: String = "abcdefghijklmnopqrstuvwx".chars().take(position).collect();
                text.push(special);
                text.push_str("yz0123456789");
                assert_eq!(stringify_str(&text), escape_slowly(&text), "{special:?} at {position}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn escaping_matches_the_definition(text in "(?s).{0,64}") {
            proptest::prop_assert_eq!(stringify_str(&text), escape_slowly(&text));
        }
    }

    #[test]
    fn duplicate_keys_keep_the_last_value() {
        assert_eq!(canon(r#"{"a":1,"a":2}"#), r#"{"a":2}"#);
    }
}
