//! How everything the bot posts names the message it answers.
//!
//! Relayed messages ([`crate::outbound`], [`crate::media`]) and the bot's own answers
//! ([`crate::answers`]) reply the same way, so the one builder sits below them all.

use teloxide_core::types::{MessageId, ReplyParameters};

/// A reply that still goes out if its target was deleted meanwhile.
pub(crate) fn reply_parameters(target: i32) -> ReplyParameters {
    ReplyParameters { allow_sending_without_reply: Some(true), ..ReplyParameters::new(MessageId(target)) }
}
