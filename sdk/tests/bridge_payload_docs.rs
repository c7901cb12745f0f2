//! The examples in `docs/bridge-payload.md` say what the SDK does: every JSON block marked
//! `<!-- check: valid -->` decodes and passes the allow-list, every one marked
//! `<!-- check: rejected: <reason> -->` decodes and is refused with that reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dm3::bridge_payload::{self, BridgePayload};
use serde_json::Value;

const DOC: &str = include_str!("../../docs/bridge-payload.md");

/// `(marker, JSON)` for every checked block, in document order.
fn checked_blocks() -> Vec<(&'static str, &'static str)> {
    let mut blocks = Vec::new();
    let mut rest = DOC;
    while let Some(start) = rest.find("<!-- check: ") {
        let after = &rest[start + "<!-- check: ".len()..];
        let (marker, after) = after.split_once(" -->").unwrap();
        let body = after.trim_start().strip_prefix("```json\n").expect("a ```json block follows the marker");
        let (json, after) = body.split_once("\n```").unwrap();
        blocks.push((marker, json));
        rest = after;
    }
    blocks
}

/// A payload document, or an attachment object whose `data` is the URI.
fn read(json: &str) -> BridgePayload {
    let value: Value = serde_json::from_str(json).unwrap();
    match value.get("data").and_then(Value::as_str) {
        Some(uri) => bridge_payload::decode(uri).unwrap(),
        None => BridgePayload::from_json(value).unwrap(),
    }
}

#[test]
fn the_documented_examples_get_the_documented_verdicts() {
    let blocks = checked_blocks();
    assert!(blocks.len() >= 8, "the examples were found: {}", blocks.len());
    for (marker, json) in blocks {
        let verdict = bridge_payload::validate(&read(json));
        match marker.strip_prefix("rejected: ") {
            None => {
                assert_eq!(marker, "valid");
                assert_eq!(verdict, Ok(()), "{json}");
            }
            Some(reason) => {
                let rejection = verdict.expect_err(json).to_string();
                assert!(rejection.contains(reason), "{rejection:?} does not say {reason:?}");
            }
        }
    }
}

#[test]
fn the_documented_limits_are_the_sdk_limits() {
    assert!(DOC.contains(&format!("{} bytes (prefix", group(bridge_payload::MAX_URI_BYTES))));
    assert!(DOC.contains(&format!("48 KiB ({} bytes)", group(bridge_payload::MAX_JSON_BYTES))));
    assert!(DOC.contains(bridge_payload::MIME_TYPE));
    assert!(DOC.contains(&format!("\"name\": \"{}\"", bridge_payload::ATTACHMENT_NAME)));
}

/// 65652 → "65,652".
fn group(number: usize) -> String {
    let digits = number.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
