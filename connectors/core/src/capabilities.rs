//! What a conversation can carry, and the check that names what it cannot.
//!
//! Networks differ (Telegram bots see no read receipts; an encrypted Matrix room carries
//! nothing until the bridge does encryption), and so do conversations on one network. The
//! engine asks the connector for the [`Capabilities`] of a conversation and checks each
//! outbound event against them *before* sending. A refusal is an [`Unsupported`] value that
//! names the feature, which the engine reports to the sender as a permanent failure: content is
//! never dropped without a word (issue 5, "explicit failure status").
//!
//! Formatting is the one feature that degrades instead of failing: [`crate::Text::body`] is
//! complete on its own, so a conversation without formatting gets the plain body.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::EventKind;
use crate::message::{Content, Text};

/// One feature a conversation may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    Text,
    Reply,
    Edit,
    Reaction,
    Delete,
    ReadReceipt,
    Media,
    /// Content a client prepared in the network's own format (a bridge payload).
    Native,
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Feature::Text => "text messages",
            Feature::Reply => "replies",
            Feature::Edit => "edits",
            Feature::Reaction => "reactions",
            Feature::Delete => "deletions",
            Feature::ReadReceipt => "read receipts",
            Feature::Media => "attachments",
            Feature::Native => "messages prepared for the network (bridge payloads)",
        })
    }
}

/// Limits on files in a conversation that takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaLimits {
    /// Largest file, in bytes.
    pub max_bytes: u64,
}

/// What one conversation can carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Set when the conversation carries nothing at all, with the reason a user should read
    /// (e.g. an end-to-end encrypted Matrix room).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    pub formatted_text: bool,
    pub replies: bool,
    pub edits: bool,
    pub reactions: bool,
    pub deletes: bool,
    pub read_receipts: bool,
    /// `None`: no attachments at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaLimits>,
    /// Longest text body in bytes, if the network has a limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_text_bytes: Option<usize>,
}

/// Why an event cannot be carried in a conversation; its `Display` is meant for the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unsupported {
    /// The conversation carries nothing, for the reason given.
    #[error("this conversation cannot be bridged: {0}")]
    Blocked(String),
    /// The conversation is end-to-end encrypted and the connector cannot encrypt: it carries
    /// only content a client encrypted itself, nothing in the clear, for the reason given.
    #[error("{0}")]
    CiphertextOnly(String),
    /// The conversation does not support this feature.
    #[error("{0} are not supported in this conversation")]
    Feature(Feature),
    /// The text is longer than the network allows.
    #[error("the text is {len} bytes long; this conversation takes at most {max}")]
    TextTooLong { len: usize, max: usize },
    /// The file is larger than the network allows.
    #[error("the attachment is {size} bytes; this conversation takes at most {max}")]
    AttachmentTooLarge { size: u64, max: u64 },
}

impl Capabilities {
    /// Everything the neutral model has, with files up to `max_media_bytes`.
    pub fn full(max_media_bytes: u64) -> Self {
        Self {
            blocked: None,
            formatted_text: true,
            replies: true,
            edits: true,
            reactions: true,
            deletes: true,
            read_receipts: true,
            media: Some(MediaLimits { max_bytes: max_media_bytes }),
            max_text_bytes: None,
        }
    }

    /// Plain text only.
    pub fn text_only() -> Self {
        Self {
            blocked: None,
            formatted_text: false,
            replies: false,
            edits: false,
            reactions: false,
            deletes: false,
            read_receipts: false,
            media: None,
            max_text_bytes: None,
        }
    }

    /// A conversation that carries nothing, for `reason`.
    pub fn blocked(reason: impl Into<String>) -> Self {
        Self { blocked: Some(reason.into()), ..Self::text_only() }
    }

    /// Whether `kind` can be carried here; if not, which feature or limit is in the way.
    pub fn check(&self, kind: &EventKind) -> Result<(), Unsupported> {
        if let Some(reason) = &self.blocked {
            return Err(Unsupported::Blocked(reason.clone()));
        }
        let need = |supported: bool, feature: Feature| {
            if supported { Ok(()) } else { Err(Unsupported::Feature(feature)) }
        };
        match kind {
            EventKind::Message(message) => {
                if message.reply_to.is_some() {
                    need(self.replies, Feature::Reply)?;
                }
                match &message.content {
                    Content::Text(text) | Content::Notice(text) => self.check_text(text),
                    Content::Attachment { attachment, caption } => {
                        let limits = self.media.ok_or(Unsupported::Feature(Feature::Media))?;
                        if attachment.size() > limits.max_bytes {
                            return Err(Unsupported::AttachmentTooLarge {
                                size: attachment.size(),
                                max: limits.max_bytes,
                            });
                        }
                        caption.as_ref().map_or(Ok(()), |text| self.check_text(text))
                    }
                }
            }
            EventKind::Edit(edit) => {
                need(self.edits, Feature::Edit)?;
                self.check_text(&edit.text)
            }
            EventKind::Reaction(_) => need(self.reactions, Feature::Reaction),
            EventKind::Delete(_) => need(self.deletes, Feature::Delete),
            EventKind::ReadReceipt(_) => need(self.read_receipts, Feature::ReadReceipt),
            // The content itself is the network's business (the engine checked it against the
            // allow-list, the connector refuses what it cannot send); the relations are ours.
            EventKind::Native(native) => {
                if native.reply_to.is_some() {
                    need(self.replies, Feature::Reply)?;
                }
                if native.replaces.is_some() {
                    need(self.edits, Feature::Edit)?;
                }
                Ok(())
            }
        }
    }

    fn check_text(&self, text: &Text) -> Result<(), Unsupported> {
        match self.max_text_bytes {
            Some(max) if text.body.len() > max => Err(Unsupported::TextTooLong { len: text.body.len(), max }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::attachment::{Attachment, MimeType};
    use crate::id::NetworkMessageId;
    use crate::message::{Message, Reaction, ReactionKey};

    fn target() -> NetworkMessageId {
        NetworkMessageId::new("$e").unwrap()
    }

    #[test]
    fn text_only_refuses_each_richer_feature_by_name() {
        let caps = Capabilities::text_only();
        let text = EventKind::Message(Message::new(Content::Text(Text::formatted("a", "<b>a</b>"))));
        assert_eq!(caps.check(&text), Ok(()), "formatting degrades, it does not fail");
        let reply = EventKind::Message(Message::new(Content::Text(Text::plain("a"))).replying_to(target()));
        assert_eq!(caps.check(&reply), Err(Unsupported::Feature(Feature::Reply)));
        let reaction =
            EventKind::Reaction(Reaction { target: target(), key: ReactionKey::new("👍").unwrap() });
        assert_eq!(caps.check(&reaction), Err(Unsupported::Feature(Feature::Reaction)));
        assert_eq!(
            caps.check(&reaction).unwrap_err().to_string(),
            "reactions are not supported in this conversation"
        );
    }

    #[test]
    fn limits_are_enforced() {
        let mut caps = Capabilities::full(4);
        let file = Attachment::inline("f", MimeType::octet_stream(), vec![0; 5]).unwrap();
        let message =
            EventKind::Message(Message::new(Content::Attachment { attachment: file, caption: None }));
        assert_eq!(caps.check(&message), Err(Unsupported::AttachmentTooLarge { size: 5, max: 4 }));
        caps.max_text_bytes = Some(2);
        let long = EventKind::Message(Message::new(Content::Text(Text::plain("abc"))));
        assert_eq!(caps.check(&long), Err(Unsupported::TextTooLong { len: 3, max: 2 }));
    }

    #[test]
    fn a_blocked_conversation_refuses_everything_with_its_reason() {
        let caps = Capabilities::blocked("encrypted");
        let text = EventKind::Message(Message::new(Content::Text(Text::plain("a"))));
        assert_eq!(caps.check(&text), Err(Unsupported::Blocked("encrypted".into())));
    }
}
