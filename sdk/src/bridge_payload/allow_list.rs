//! What an allow-list refusal says, and the walker both networks' allow-lists
//! use to read a JSON object field by field.
//!
//! A payload is refused as a whole with the first reason found, never
//! trimmed to what is allowed: the sender signed it to be forwarded verbatim,
//! and a silently stripped field (a `formatted_body`, a `file`) would deliver
//! something the sender never wrote, without telling them. Every reason names
//! the field by its path (`content.info.w`, `parameters.entities[2].type`) so
//! a client author can fix the payload from the message alone.

use serde_json::{Map, Value};

use super::excerpt;

/// The largest integer Matrix and JavaScript agree on (2^53 - 1).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a bridge may not forward a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error(
        "Matrix event type `{0}` is not allowed in a bridge payload (allowed: m.room.message, m.room.encrypted)"
    )]
    EventType(String),
    #[error(
        "msgtype `{0}` is not allowed in a bridge payload (allowed: m.text, m.notice, m.emote, m.image, m.file, m.audio, m.video)"
    )]
    Msgtype(String),
    #[error(
        "Telegram method `{0}` is not allowed in a bridge payload (allowed: sendMessage, sendPhoto, sendDocument, sendVideo, sendAudio)"
    )]
    Method(String),
    #[error("`{0}` is not an allowed field")]
    FieldNotAllowed(String),
    #[error(
        "`{0}` is set by the bridge from the DM3 message (type, referenceMessageHash, recipient), not by the payload"
    )]
    SetByBridge(String),
    #[error("`{0}` is missing")]
    Missing(String),
    #[error("`{field}` must be {expected}")]
    Invalid { field: String, expected: String },
    #[error("`{field}`: {rule}")]
    Conflict { field: String, rule: &'static str },
    #[error("`encrypted` must be true exactly when the event type is m.room.encrypted")]
    EncryptedMismatch,
}

impl Rejection {
    pub(super) fn invalid(field: String, expected: impl Into<String>) -> Self {
        Self::Invalid { field, expected: expected.into() }
    }
}

/// A JSON object being checked, and its path for the reasons.
pub(super) struct Fields<'a> {
    object: &'a Map<String, Value>,
    path: String,
}

impl<'a> Fields<'a> {
    pub fn new(object: &'a Map<String, Value>, path: impl Into<String>) -> Self {
        Self { object, path: path.into() }
    }

    /// The path of one of this object's fields.
    pub fn path(&self, key: &str) -> String {
        format!("{}.{}", self.path, excerpt(key))
    }

    /// Refuses a field the bridge writes itself, then any field not in `allowed`.
    pub fn allow(&self, set_by_bridge: &[&str], allowed: &[&str]) -> Result<(), Rejection> {
        if let Some(key) = set_by_bridge.iter().find(|key| self.object.contains_key(**key)) {
            return Err(Rejection::SetByBridge(self.path(key)));
        }
        match self.object.keys().find(|key| !allowed.contains(&key.as_str())) {
            Some(key) => Err(Rejection::FieldNotAllowed(self.path(key))),
            None => Ok(()),
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.object.contains_key(key)
    }

    pub fn string(&self, key: &str) -> Result<Option<&'a str>, Rejection> {
        match self.object.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(Rejection::invalid(self.path(key), "a string")),
        }
    }

    pub fn required_string(&self, key: &str) -> Result<&'a str, Rejection> {
        self.string(key)?.ok_or_else(|| Rejection::Missing(self.path(key)))
    }

    /// A required string with exactly this value.
    pub fn constant(&self, key: &str, expected: &str) -> Result<(), Rejection> {
        if self.required_string(key)? == expected {
            Ok(())
        } else {
            Err(Rejection::invalid(self.path(key), format!("\"{expected}\"")))
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, Rejection> {
        match self.object.get(key) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(_) => Err(Rejection::invalid(self.path(key), "a boolean")),
        }
    }

    /// A non-negative integer both Matrix and JavaScript can represent.
    pub fn uint(&self, key: &str) -> Result<Option<u64>, Rejection> {
        match self.object.get(key) {
            None => Ok(None),
            Some(value) => match value.as_u64() {
                Some(number) if number <= MAX_SAFE_INTEGER => Ok(Some(number)),
                _ => Err(Rejection::invalid(self.path(key), "a non-negative integer below 2^53")),
            },
        }
    }

    pub fn required_uint(&self, key: &str) -> Result<u64, Rejection> {
        self.uint(key)?.ok_or_else(|| Rejection::Missing(self.path(key)))
    }

    pub fn object(&self, key: &str) -> Result<Option<Fields<'a>>, Rejection> {
        match self.object.get(key) {
            None => Ok(None),
            Some(Value::Object(inner)) => Ok(Some(Fields::new(inner, self.path(key)))),
            Some(_) => Err(Rejection::invalid(self.path(key), "a JSON object")),
        }
    }

    pub fn required_object(&self, key: &str) -> Result<Fields<'a>, Rejection> {
        self.object(key)?.ok_or_else(|| Rejection::Missing(self.path(key)))
    }

    /// An array, with the path of each item.
    pub fn array(&self, key: &str) -> Result<Option<Vec<(String, &'a Value)>>, Rejection> {
        match self.object.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                let path = self.path(key);
                Ok(Some(
                    items
                        .iter()
                        .enumerate()
                        .map(|(index, item)| (format!("{path}[{index}]"), item))
                        .collect(),
                ))
            }
            Some(_) => Err(Rejection::invalid(self.path(key), "an array")),
        }
    }

    /// Every value of this object, with its path (for maps such as `hashes`).
    pub fn values(&self) -> impl Iterator<Item = (String, &'a Value)> + '_ {
        self.object.iter().map(|(key, value)| (self.path(key), value))
    }
}

/// An array item that must be an object.
pub(super) fn item_object<'a>(path: String, item: &'a Value) -> Result<Fields<'a>, Rejection> {
    match item {
        Value::Object(inner) => Ok(Fields::new(inner, path)),
        _ => Err(Rejection::invalid(path, "a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn names_each_refused_field_by_its_path() {
        let value = json!({"a": 1, "b": "x", "m.relates_to": {}, "big": 9_007_199_254_740_992_u64});
        let fields = Fields::new(value.as_object().unwrap(), "content");
        assert_eq!(
            fields.allow(&["m.relates_to"], &[]),
            Err(Rejection::SetByBridge("content.m.relates_to".into()))
        );
        assert_eq!(
            fields.allow(&[], &["b", "m.relates_to", "big"]),
            Err(Rejection::FieldNotAllowed("content.a".into()))
        );
        assert_eq!(fields.string("a"), Err(Rejection::invalid("content.a".into(), "a string")));
        assert_eq!(fields.required_string("c"), Err(Rejection::Missing("content.c".into())));
        assert_eq!(fields.constant("b", "y"), Err(Rejection::invalid("content.b".into(), "\"y\"")));
        assert_eq!(fields.uint("a"), Ok(Some(1)));
        assert!(fields.uint("big").is_err(), "2^53 is beyond what JSON readers agree on");
        assert_eq!(fields.array("b").unwrap_err().to_string(), "`content.b` must be an array");
    }
}
