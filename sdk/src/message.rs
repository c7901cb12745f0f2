//! DM3 messages: the signed plaintext that travels inside an envelope (docs/protocol.md §5).
//!
//! A message is kept as the JSON object it was received or built as, because
//! its signature and its hash cover the canonical form of *every* field,
//! unknown ones included (P2, P17). [`Message`] wraps that object and offers a
//! validated, typed view of the metadata next to it; nothing re-serializes a
//! struct.
//!
//! - [`MessageBuilder`] (`build.rs`) makes the seven types the reference
//!   builds, byte for byte;
//! - [`Message::sign`] and [`Message::verify`] (`sign.rs`) are the reference's
//!   signing and `checkMessageSignature`;
//! - [`Attachment`] (`attachment.rs`) reads attachments without losing fields;
//!   `attachment_data.rs` decodes the bytes of `data:` attachments, bounded.

mod attachment;
mod attachment_data;
mod build;
mod sign;

pub use attachment::{Attachment, AttachmentError};
pub use attachment_data::{AttachmentData, AttachmentDataError, DEFAULT_MIME, decode_data_uri};
pub use build::{MessageBuilder, now_ms};
pub use sign::MessageVerifyError;

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::canonical;
use crate::encoding::{hex_decode_array, hex_encode};
use crate::hash::sha256;

/// Why a JSON value is not a DM3 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("a message must be a JSON object")]
    NotAnObject,
    #[error("message field `{0}` is missing or has the wrong type")]
    Field(&'static str),
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    #[error("malformed message hash: expected 0x and 64 hex digits")]
    MalformedHash,
}

/// The message types the reference implements (§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    New,
    DeleteRequest,
    Edit,
    Reply,
    Reaction,
    ReadOpened,
    ReadReceived,
    ResendRequest,
}

impl MessageType {
    pub const ALL: [MessageType; 8] = [
        Self::New,
        Self::DeleteRequest,
        Self::Edit,
        Self::Reply,
        Self::Reaction,
        Self::ReadOpened,
        Self::ReadReceived,
        Self::ResendRequest,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "NEW",
            Self::DeleteRequest => "DELETE_REQUEST",
            Self::Edit => "EDIT",
            Self::Reply => "REPLY",
            Self::Reaction => "REACTION",
            Self::ReadOpened => "READ_OPENED",
            Self::ReadReceived => "READ_RECEIVED",
            Self::ResendRequest => "RESEND_REQUEST",
        }
    }
}

impl FromStr for MessageType {
    type Err = MessageError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| MessageError::UnknownType(text.to_owned()))
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message id: `sha256(stringify(message))`, signature included (§5.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageHash([u8; 32]);

impl MessageHash {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash of a canonical string.
    pub fn of_canonical(canonical: &str) -> Self {
        Self(sha256(canonical.as_bytes()))
    }
}

impl FromStr for MessageHash {
    type Err = MessageError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 66 {
            return Err(MessageError::MalformedHash);
        }
        hex_decode_array(text).map(Self).map_err(|_| MessageError::MalformedHash)
    }
}

impl fmt::Display for MessageHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex_encode(&self.0))
    }
}

impl fmt::Debug for MessageHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageHash({self})")
    }
}

/// A DM3 message, signed or not yet signed, kept as its JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    raw: Map<String, Value>,
    kind: MessageType,
}

impl Message {
    /// Validates the shape the reference schema requires of the metadata and
    /// keeps everything else untouched.
    pub fn from_value(value: Value) -> Result<Self, MessageError> {
        let Value::Object(raw) = value else {
            return Err(MessageError::NotAnObject);
        };
        let metadata =
            raw.get("metadata").and_then(Value::as_object).ok_or(MessageError::Field("metadata"))?;
        for field in ["to", "from"] {
            metadata.get(field).and_then(Value::as_str).ok_or(MessageError::Field(field_name(field)))?;
        }
        metadata.get("timestamp").and_then(Value::as_f64).ok_or(MessageError::Field("metadata.timestamp"))?;
        let kind = metadata
            .get("type")
            .and_then(Value::as_str)
            .ok_or(MessageError::Field("metadata.type"))?
            .parse()?;
        for (field, name) in [("referenceMessageHash", "metadata.referenceMessageHash")] {
            if let Some(value) = metadata.get(field)
                && !value.is_string()
            {
                return Err(MessageError::Field(name));
            }
        }
        if let Some(text) = raw.get("message")
            && !text.is_string()
        {
            return Err(MessageError::Field("message"));
        }
        // Objects or legacy strings inside (P17); see `parsed_attachments`.
        if let Some(attachments) = raw.get("attachments")
            && !attachments.is_array()
        {
            return Err(MessageError::Field("attachments"));
        }
        if let Some(signature) = raw.get("signature")
            && !signature.is_string()
        {
            return Err(MessageError::Field("signature"));
        }
        Ok(Self { raw, kind })
    }

    /// Parses message JSON text.
    pub fn parse(text: &str) -> Result<Self, MessageError> {
        Self::from_value(serde_json::from_str(text).map_err(|_| MessageError::NotAnObject)?)
    }

    crate::raw_json::raw_json_object!();

    pub fn into_value(self) -> Value {
        Value::Object(self.raw)
    }

    /// The canonical serialization that the hash (and, without `signature`, the
    /// signature) covers.
    pub fn canonical(&self) -> String {
        canonical::stringify_object(&self.raw)
    }

    /// `sha256(stringify(message))`, the id used everywhere else.
    pub fn hash(&self) -> MessageHash {
        MessageHash::of_canonical(&self.canonical())
    }

    pub fn kind(&self) -> MessageType {
        self.kind
    }

    fn metadata_str(&self, field: &str) -> Option<&str> {
        self.raw.get("metadata")?.get(field)?.as_str()
    }

    /// `metadata.to`, as written (not normalized).
    pub fn to(&self) -> &str {
        self.metadata_str("to").unwrap_or_default()
    }

    /// `metadata.from`, as written (not normalized).
    pub fn from(&self) -> &str {
        self.metadata_str("from").unwrap_or_default()
    }

    /// `metadata.timestamp` in milliseconds.
    pub fn timestamp(&self) -> f64 {
        self.raw.get("metadata").and_then(|m| m.get("timestamp")).and_then(Value::as_f64).unwrap_or_default()
    }

    pub fn reference_message_hash(&self) -> Option<&str> {
        self.metadata_str("referenceMessageHash")
    }

    /// The text body, absent for DELETE_REQUEST.
    pub fn text(&self) -> Option<&str> {
        self.raw.get("message").and_then(Value::as_str)
    }

    pub fn attachments(&self) -> Option<&Vec<Value>> {
        self.raw.get("attachments").and_then(Value::as_array)
    }

    pub fn signature(&self) -> Option<&str> {
        self.raw.get("signature").and_then(Value::as_str)
    }
}

fn field_name(field: &str) -> &'static str {
    match field {
        "to" => "metadata.to",
        _ => "metadata.from",
    }
}
