//! Building messages exactly as the reference builders emit them (docs/protocol.md §5.2).
//!
//! Absent and empty are different signed bytes: `"attachments":[]` is part of
//! the canonical string, a missing key is not. The reference builders differ
//! per type, and a message we build must hash like theirs so receipts, edits
//! and reactions point at the right message:
//!
//! | builder | `message` | `referenceMessageHash` | `attachments` |
//! | --- | --- | --- | --- |
//! | [`MessageBuilder::text`] (NEW) | text | absent | as given, absent for `None` |
//! | [`MessageBuilder::edit`] | new text | the original | as given |
//! | [`MessageBuilder::reply`] | text | the replied message | as given |
//! | [`MessageBuilder::reaction`] | emoji | the target | `[]` |
//! | [`MessageBuilder::delete_request`] | absent | the target | absent |
//! | [`MessageBuilder::read_received`] | `"READ_RECEIVED"` | the received message | `[]` |
//! | [`MessageBuilder::read_opened`] | `"READ_OPENED"` | the read message | `[]` |
//!
//! The reference reads the clock inside the builder; we take the timestamp
//! (milliseconds, §2.1) as a parameter so messages can be rebuilt and tested,
//! with [`MessageBuilder::now`] for the usual case. Builders return unsigned
//! messages; [`Message::sign`] adds the signature. RESEND_REQUEST has no
//! builder in the reference and none here.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::{Attachment, Message, MessageHash, MessageType};

/// The current time in milliseconds since the epoch, as `Date.now()`.
pub fn now_ms() -> u64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

/// Sender, receiver and time of the messages it builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBuilder {
    to: String,
    from: String,
    timestamp: u64,
}

impl MessageBuilder {
    /// Messages from `from` to `to` (ENS names, as written; not normalized),
    /// stamped `timestamp` milliseconds since the epoch.
    pub fn new(to: impl Into<String>, from: impl Into<String>, timestamp: u64) -> Self {
        Self { to: to.into(), from: from.into(), timestamp }
    }

    /// Messages stamped with the current time.
    pub fn now(to: impl Into<String>, from: impl Into<String>) -> Self {
        Self::new(to, from, now_ms())
    }

    /// `createMessage`: a NEW message.
    pub fn text(&self, text: &str, attachments: Option<Vec<Attachment>>) -> Message {
        self.build(MessageType::New, Some(text), attachments, None)
    }

    /// `createEditMessage`: replaces the text of `original`.
    pub fn edit(&self, text: &str, original: &MessageHash, attachments: Option<Vec<Attachment>>) -> Message {
        self.build(MessageType::Edit, Some(text), attachments, Some(original))
    }

    /// `createReplyMessage`: a message answering `replied_to`.
    pub fn reply(
        &self,
        text: &str,
        replied_to: &MessageHash,
        attachments: Option<Vec<Attachment>>,
    ) -> Message {
        self.build(MessageType::Reply, Some(text), attachments, Some(replied_to))
    }

    /// `createReactionMessage`: an emoji on `target`.
    pub fn reaction(&self, emoji: &str, target: &MessageHash) -> Message {
        self.build(MessageType::Reaction, Some(emoji), Some(Vec::new()), Some(target))
    }

    /// `createDeleteRequestMessage`: asks the receiver to blank `target`.
    pub fn delete_request(&self, target: &MessageHash) -> Message {
        self.build(MessageType::DeleteRequest, None, None, Some(target))
    }

    /// `createReadReceiveMessage`, with the text the messenger sends.
    pub fn read_received(&self, received: &MessageHash) -> Message {
        self.build(MessageType::ReadReceived, Some("READ_RECEIVED"), Some(Vec::new()), Some(received))
    }

    /// `createReadOpenMessage`, with the text the messenger sends.
    pub fn read_opened(&self, opened: &MessageHash) -> Message {
        self.build(MessageType::ReadOpened, Some("READ_OPENED"), Some(Vec::new()), Some(opened))
    }

    fn build(
        &self,
        kind: MessageType,
        text: Option<&str>,
        attachments: Option<Vec<Attachment>>,
        reference: Option<&MessageHash>,
    ) -> Message {
        let mut metadata = Map::new();
        if let Some(reference) = reference {
            metadata.insert("referenceMessageHash".into(), Value::String(reference.to_string()));
        }
        metadata.insert("type".into(), Value::String(kind.as_str().into()));
        metadata.insert("to".into(), Value::String(self.to.clone()));
        metadata.insert("from".into(), Value::String(self.from.clone()));
        metadata.insert("timestamp".into(), Value::from(self.timestamp));
        let mut raw = Map::new();
        if let Some(text) = text {
            raw.insert("message".into(), Value::String(text.into()));
        }
        if let Some(attachments) = attachments {
            raw.insert(
                "attachments".into(),
                Value::Array(attachments.into_iter().map(Value::from).collect()),
            );
        }
        raw.insert("metadata".into(), Value::Object(metadata));
        Message { raw, kind }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn empty_and_absent_attachments_are_different_messages() {
        let builder = MessageBuilder::new("bob.eth", "alice.eth", 1);
        let absent = builder.text("hi", None);
        let empty = builder.text("hi", Some(Vec::new()));
        assert!(!absent.canonical().contains("attachments"));
        assert!(empty.canonical().starts_with(r#"{"attachments":[],"#));
        assert_ne!(absent.hash(), empty.hash());
    }

    #[test]
    fn every_builder_output_parses_back_as_its_type() {
        let builder = MessageBuilder::now("bob.eth", "alice.eth");
        let target = builder.text("x", None).hash();
        let built = [
            builder.text("x", Some(vec![Attachment::new("data:,x")])),
            builder.edit("y", &target, None),
            builder.reply("z", &target, None),
            builder.reaction("+1", &target),
            builder.delete_request(&target),
            builder.read_received(&target),
            builder.read_opened(&target),
        ];
        for message in built {
            let parsed = Message::from_value(message.to_value()).unwrap();
            assert_eq!(parsed, message);
            assert!(parsed.timestamp() > 1.6e12);
            let expects_reference = parsed.kind() != MessageType::New;
            assert_eq!(parsed.reference_message_hash().is_some(), expects_reference);
        }
    }
}
