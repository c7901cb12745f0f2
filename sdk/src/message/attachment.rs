//! Message attachments as they really travel (docs/protocol.md §5.1, P17).
//!
//! The published schema says `{name?, data}` with no other field, but the
//! reference messenger puts its UI objects `{id, name, data, isImage}` into
//! `attachments`, and older messages carry bare URI strings, as the spec's
//! `string[]`. Every one of these fields is inside the signature and the
//! message hash, so an [`Attachment`] keeps the whole JSON it came from and
//! only *reads* `data` and `name` out of it; turning it back into JSON gives
//! the same value, extra fields and all.

use serde_json::{Map, Value};

use super::Message;

/// Why one entry of `attachments` is not an attachment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    #[error("an attachment must be an object or a URI string")]
    WrongType,
    #[error("an attachment object must have a string `data`")]
    MissingData,
    #[error("an attachment's `name` must be a string")]
    NameNotString,
}

/// One attachment: an object with a `data` URI, or a legacy bare URI string.
#[derive(Debug, Clone, PartialEq)]
pub enum Attachment {
    /// `{name?, data, ...}`, every field kept.
    Object(Map<String, Value>),
    /// A bare URI string (spec `string[]`, older clients).
    Uri(String),
}

impl Attachment {
    /// `{data}`: a data:, https: or ipfs: URI.
    pub fn new(data: impl Into<String>) -> Self {
        let mut raw = Map::new();
        raw.insert("data".into(), Value::String(data.into()));
        Self::Object(raw)
    }

    /// `{name, data}`, the shape the schema describes.
    pub fn named(name: impl Into<String>, data: impl Into<String>) -> Self {
        let mut raw = Map::new();
        raw.insert("name".into(), Value::String(name.into()));
        raw.insert("data".into(), Value::String(data.into()));
        Self::Object(raw)
    }

    /// Reads one entry of `attachments` without dropping anything.
    pub fn from_value(value: &Value) -> Result<Self, AttachmentError> {
        match value {
            Value::String(uri) => Ok(Self::Uri(uri.clone())),
            Value::Object(raw) => {
                if !raw.get("data").is_some_and(Value::is_string) {
                    return Err(AttachmentError::MissingData);
                }
                if raw.get("name").is_some_and(|name| !name.is_string()) {
                    return Err(AttachmentError::NameNotString);
                }
                Ok(Self::Object(raw.clone()))
            }
            _ => Err(AttachmentError::WrongType),
        }
    }

    /// The attachment's URI (`data`, or the bare string).
    pub fn data(&self) -> &str {
        match self {
            Self::Object(raw) => raw.get("data").and_then(Value::as_str).unwrap_or_default(),
            Self::Uri(uri) => uri,
        }
    }

    /// The file name, if the sender gave one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Object(raw) => raw.get("name").and_then(Value::as_str),
            Self::Uri(_) => None,
        }
    }

    /// Fields other than `name` and `data` (the messenger's `id`, `isImage`, …).
    pub fn extra_fields(&self) -> impl Iterator<Item = (&String, &Value)> {
        let raw = match self {
            Self::Object(raw) => Some(raw),
            Self::Uri(_) => None,
        };
        raw.into_iter().flatten().filter(|(key, _)| key.as_str() != "name" && key.as_str() != "data")
    }

    /// The JSON this attachment was read from or is written as.
    pub fn to_value(&self) -> Value {
        match self {
            Self::Object(raw) => Value::Object(raw.clone()),
            Self::Uri(uri) => Value::String(uri.clone()),
        }
    }
}

impl From<Attachment> for Value {
    fn from(attachment: Attachment) -> Self {
        match attachment {
            Attachment::Object(raw) => Value::Object(raw),
            Attachment::Uri(uri) => Value::String(uri),
        }
    }
}

impl Message {
    /// Every entry of `attachments` read as an [`Attachment`], in order; one
    /// result per entry so a malformed one neither hides nor drops the others.
    /// Empty when the message has no `attachments`.
    pub fn parsed_attachments(&self) -> Vec<Result<Attachment, AttachmentError>> {
        self.attachments().map(|items| items.iter().map(Attachment::from_value).collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn widget_objects_and_legacy_strings_keep_every_field() {
        let widget =
            json!({"id": "abc123", "name": "pic.png", "data": "data:image/png;base64,iVBO", "isImage": true});
        let attachment = Attachment::from_value(&widget).unwrap();
        assert_eq!(attachment.data(), "data:image/png;base64,iVBO");
        assert_eq!(attachment.name(), Some("pic.png"));
        let extra: Vec<&str> = attachment.extra_fields().map(|(key, _)| key.as_str()).collect();
        assert_eq!(extra, ["id", "isImage"]);
        assert_eq!(attachment.to_value(), widget);

        let legacy = Attachment::from_value(&json!("https://example.org/a.png")).unwrap();
        assert_eq!((legacy.data(), legacy.name()), ("https://example.org/a.png", None));
        assert_eq!(Value::from(legacy), json!("https://example.org/a.png"));
    }

    #[test]
    fn malformed_entries_are_reported_one_by_one() {
        assert_eq!(Attachment::from_value(&json!(3)), Err(AttachmentError::WrongType));
        assert_eq!(Attachment::from_value(&json!({"name": "x"})), Err(AttachmentError::MissingData));
        assert_eq!(
            Attachment::from_value(&json!({"data": "d", "name": 1})),
            Err(AttachmentError::NameNotString)
        );
        assert_eq!(Attachment::named("n", "d").to_value(), json!({"name": "n", "data": "d"}));
        assert_eq!(Attachment::new("d").to_value(), json!({"data": "d"}));
    }
}
