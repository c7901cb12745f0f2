//! The message vocabulary the bridge carries between networks.
//!
//! It is the intersection that DM3 and the networks we bridge can all express (DM3's NEW,
//! REPLY, EDIT, REACTION, DELETE_REQUEST and READ_* messages; Matrix's `m.room.message`,
//! `m.replace`, `m.annotation`, redactions and receipts), shaped like the MIMI content
//! vocabulary (IETF `draft-ietf-mimi-content`) so a later connector fits.
//!
//! References to other messages are [`NetworkMessageId`]s *of the connector's network*: on the
//! way in the connector reports the ids it saw, on the way out the engine has already looked up
//! the target's network id in its message map. A connector never needs the map.

use serde::{Deserialize, Serialize};

use crate::attachment::Attachment;
use crate::id::NetworkMessageId;

/// Longest reaction key, in bytes (an emoji sequence or a short word).
pub const MAX_REACTION_KEY_BYTES: usize = 64;

/// Text, with an optional HTML rendering of the same content.
///
/// `body` is always complete on its own: a network or client without formatting shows it, so
/// dropping `html` degrades the look, never the content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

impl Text {
    /// Unformatted text.
    pub fn plain(body: impl Into<String>) -> Self {
        Self { body: body.into(), html: None }
    }

    /// Text with an HTML rendering; `body` must say the same in plain text.
    pub fn formatted(body: impl Into<String>, html: impl Into<String>) -> Self {
        Self { body: body.into(), html: Some(html.into()) }
    }
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    /// A text message.
    Text(Text),
    /// A message from the bridge itself (a delivery failure, a warning), shown as such where the
    /// network can (a Matrix `m.notice`). Toward a network it is only ever the bridge's own
    /// words, never a bridged message's content: the Matrix connector lets it into an encrypted
    /// room, where nothing bridged may go in the clear.
    Notice(Text),
    /// A file, with an optional caption.
    Attachment {
        attachment: Attachment,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<Text>,
    },
}

/// A new message, possibly a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub content: Content,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<NetworkMessageId>,
}

impl Message {
    /// A message that replies to nothing.
    pub fn new(content: Content) -> Self {
        Self { content, reply_to: None }
    }

    /// The same message as a reply to `target`.
    pub fn replying_to(mut self, target: NetworkMessageId) -> Self {
        self.reply_to = Some(target);
        self
    }
}

/// A new text for an earlier message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edit {
    pub target: NetworkMessageId,
    pub text: Text,
}

/// The key of a reaction: an emoji (or a short text where the network allows it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReactionKey(String);

/// A reaction key that is empty, too long or holds control characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a reaction key: 1 to 64 bytes without control characters")]
pub struct BadReactionKey(pub String);

impl ReactionKey {
    /// Validates `key`.
    pub fn new(key: impl Into<String>) -> Result<Self, BadReactionKey> {
        let key = key.into();
        if key.is_empty() || key.len() > MAX_REACTION_KEY_BYTES || key.chars().any(char::is_control) {
            return Err(BadReactionKey(key));
        }
        Ok(Self(key))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ReactionKey {
    type Error = BadReactionKey;
    fn try_from(key: String) -> Result<Self, BadReactionKey> {
        Self::new(key)
    }
}

impl From<ReactionKey> for String {
    fn from(key: ReactionKey) -> String {
        key.0
    }
}

/// A reaction to an earlier message. Taking it back is a [`Delete`] of the reaction itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub target: NetworkMessageId,
    pub key: ReactionKey,
}

/// The removal of an earlier message (or reaction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delete {
    pub target: NetworkMessageId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The reader has seen everything up to and including `up_to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadReceipt {
    pub up_to: NetworkMessageId,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn reaction_keys() {
        assert_eq!(ReactionKey::new("👍").unwrap().as_str(), "👍");
        assert!(ReactionKey::new("").is_err());
        assert!(ReactionKey::new("a\u{0}").is_err());
        assert!(ReactionKey::new("x".repeat(65)).is_err());
    }

    #[test]
    fn a_reply_serializes_with_its_target() {
        let target = NetworkMessageId::new("$event").unwrap();
        let message = Message::new(Content::Text(Text::formatted("hi", "<b>hi</b>"))).replying_to(target);
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["reply_to"], "$event");
        assert_eq!(json["content"]["text"]["html"], "<b>hi</b>");
        assert_eq!(serde_json::from_value::<Message>(json).unwrap(), message);
    }

    proptest! {
        #[test]
        fn reaction_key_parser(s in "\\PC{0,20}") {
            let valid = !s.is_empty() && s.len() <= MAX_REACTION_KEY_BYTES;
            prop_assert_eq!(ReactionKey::new(s).is_ok(), valid);
        }
    }
}
