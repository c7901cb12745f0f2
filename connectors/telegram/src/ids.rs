//! The neutral ids of Telegram things, and their parsers.
//!
//! The bot's private chat with a Telegram user carries many DM3 conversations at once (one per
//! DM3 contact), so a conversation is the pair:
//!
//! | neutral id | form | example |
//! |---|---|---|
//! | [`ConversationId`] | `<chat id>/<DM3 name>` | `12345/alice.eth` |
//! | [`NetworkMessageId`] | `<chat id>:<message id>`, optionally `:<suffix>` | `12345:678`, `12345:678:edit-k1` |
//! | a Telegram user's reaction | `<message>:reacted-<user id>-<emoji as hex>-u<update id>` | `12345:678:reacted-12345-f09f918d-u1005` |
//! | [`NetworkUserId`] | the Telegram user id | `12345` |
//!
//! Message ids are only unique within a chat, hence the chat id in front. Telegram gives edits and
//! reactions no id of their own; the connector names them after their target with a suffix
//! (`edit-…`, `reaction-…`), so every event still has a distinct id for the engine's message
//! map, and a later operation on one of them still finds the Telegram message it concerns.
//!
//! A conversation id is at most 255 bytes ([`dm3_bridge_connector::id::MAX_OPAQUE_ID_BYTES`]),
//! so the DM3 name may use what the chat id leaves; [`IdsError::NameTooLong`] says how much.

use dm3_bridge_connector::id::MAX_OPAQUE_ID_BYTES;
use dm3_bridge_connector::{ConversationId, IdError, NetworkMessageId, NetworkUserId, RemoteIdentity};

/// Why an id is not one of this connector's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdsError {
    /// The DM3 name does not fit next to the chat id in a conversation id.
    #[error("the DM3 name is {len} bytes long; this bridge can hold names of at most {max} bytes")]
    NameTooLong { len: usize, max: usize },
    /// The DM3 name is not a usable id (empty, whitespace, control characters).
    #[error("`{0}` is not a usable DM3 name")]
    BadName(String),
    /// The conversation id is not `<chat id>/<DM3 name>`.
    #[error("`{0}` is not a Telegram conversation id (<chat id>/<DM3 name>)")]
    NotAConversation(String),
    /// The message id is not `<chat id>:<message id>`.
    #[error("`{0}` is not a Telegram message id (<chat id>:<message id>)")]
    NotAMessage(String),
}

/// A Telegram message, as the connector names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageRef {
    pub chat: i64,
    pub message: i32,
}

/// The conversation of `chat` with the DM3 user `contact`.
pub fn conversation_id(chat: i64, contact: &RemoteIdentity) -> Result<ConversationId, IdsError> {
    let chat = chat.to_string();
    let max = MAX_OPAQUE_ID_BYTES - chat.len() - 1;
    let name = contact.as_str();
    if name.len() > max {
        return Err(IdsError::NameTooLong { len: name.len(), max });
    }
    ConversationId::new(format!("{chat}/{name}")).map_err(|_| IdsError::BadName(name.to_owned()))
}

/// The longest DM3 name that fits in a conversation of `chat`.
pub fn max_name_bytes(chat: i64) -> usize {
    MAX_OPAQUE_ID_BYTES - chat.to_string().len() - 1
}

/// The chat and the DM3 contact of a conversation.
pub fn parse_conversation(conversation: &ConversationId) -> Result<(i64, RemoteIdentity), IdsError> {
    let bad = || IdsError::NotAConversation(conversation.to_string());
    let (chat, name) = conversation.as_str().split_once('/').ok_or_else(bad)?;
    let chat = parse_chat(chat).ok_or_else(bad)?;
    let contact = RemoteIdentity::new(name).map_err(|_| bad())?;
    Ok((chat, contact))
}

/// The neutral id of message `message` in `chat`.
pub fn message_id(chat: i64, message: i32) -> NetworkMessageId {
    // Two integers and a colon: always a valid opaque id.
    NetworkMessageId::new(format!("{chat}:{message}"))
        .unwrap_or_else(|e| unreachable!("`{chat}:{message}` is a valid id: {e}"))
}

/// The id of an event about `target` that Telegram gives no id of its own (`<target>:<suffix>`).
pub fn derived_id(target: MessageRef, suffix: &str) -> Result<NetworkMessageId, IdError> {
    NetworkMessageId::new(format!("{}:{}:{suffix}", target.chat, target.message))
}

/// Suffix of a Telegram user's reaction, and of its [`reaction_slot`].
const REACTED: &str = "reacted-";
/// Suffix of a Telegram user taking a reaction back.
const UNREACTED: &str = "unreacted-";

/// The id of `user`'s reaction `emoji` on `target`, added in update `update_id`. The update id
/// makes each addition an event of its own: a reaction taken back and added again is a new DM3
/// REACTION, not a replay of the first (whose job key would swallow it). The emoji is written in
/// hex so that the id stays ASCII, as every other id of this connector.
pub fn user_reaction_id(
    target: MessageRef,
    user: u64,
    emoji: &str,
    update_id: u32,
) -> Result<NetworkMessageId, IdError> {
    derived_id(target, &format!("{REACTED}{user}-{}-u{update_id}", hex(emoji)))
}

/// Where the bridge remembers which [`user_reaction_id`] stands for `user`'s `emoji` on
/// `target` now: Telegram says only *that* a reaction was taken back, and the DM3 side needs
/// the hash of the REACTION it takes back.
pub fn reaction_slot(target: MessageRef, user: u64, emoji: &str) -> Result<NetworkMessageId, IdError> {
    derived_id(target, &format!("{REACTED}{user}-{}", hex(emoji)))
}

/// The id of `user` taking back their reaction `emoji` on `target` in update `update_id`.
pub fn reaction_removal_id(
    target: MessageRef,
    user: u64,
    emoji: &str,
    update_id: u32,
) -> Result<NetworkMessageId, IdError> {
    derived_id(target, &format!("{UNREACTED}{user}-{}-u{update_id}", hex(emoji)))
}

/// Whether `suffix` (of [`parse_message_id`]) names a Telegram user's reaction or its removal:
/// something only that user can undo, never the bot.
pub fn is_user_reaction(suffix: &str) -> bool {
    suffix.starts_with(REACTED) || suffix.starts_with(UNREACTED)
}

fn hex(text: &str) -> String {
    use std::fmt::Write as _;
    text.bytes().fold(String::with_capacity(text.len() * 2), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// The Telegram message an id refers to, and its suffix if it names an edit or a reaction.
pub fn parse_message_id(id: &NetworkMessageId) -> Result<(MessageRef, Option<&str>), IdsError> {
    let bad = || IdsError::NotAMessage(id.to_string());
    let mut parts = id.as_str().splitn(3, ':');
    let chat = parts.next().and_then(parse_chat).ok_or_else(bad)?;
    let message = parts.next().and_then(parse_message).ok_or_else(bad)?;
    Ok((MessageRef { chat, message }, parts.next()))
}

/// The neutral id of a Telegram user.
pub fn user_id(user: u64) -> NetworkUserId {
    NetworkUserId::new(user.to_string()).unwrap_or_else(|e| unreachable!("`{user}` is a valid id: {e}"))
}

/// A Telegram user id from its neutral id.
pub fn parse_user_id(user: &NetworkUserId) -> Option<u64> {
    canonical_number(user.as_str()).and_then(|s| s.parse().ok())
}

fn parse_chat(s: &str) -> Option<i64> {
    canonical_number(s).and_then(|s| s.parse().ok())
}

fn parse_message(s: &str) -> Option<i32> {
    canonical_number(s).and_then(|s| s.parse().ok()).filter(|m: &i32| *m > 0)
}

/// Only the form `to_string` prints (`-` sign, no leading zeros, no `+`), so every id has one
/// spelling and two spellings never name one thing in the message map.
fn canonical_number(s: &str) -> Option<&str> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && s != "-0";
    canonical.then_some(s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn conversations_and_messages() {
        let alice = RemoteIdentity::new("alice.eth").unwrap();
        let conversation = conversation_id(12345, &alice).unwrap();
        assert_eq!(conversation.as_str(), "12345/alice.eth");
        assert_eq!(parse_conversation(&conversation).unwrap(), (12345, alice));
        let id = message_id(-100_123, 7);
        assert_eq!(id.as_str(), "-100123:7");
        assert_eq!(parse_message_id(&id).unwrap(), (MessageRef { chat: -100_123, message: 7 }, None));
        let edit = derived_id(MessageRef { chat: 5, message: 9 }, "edit-k1").unwrap();
        assert_eq!(parse_message_id(&edit).unwrap(), (MessageRef { chat: 5, message: 9 }, Some("edit-k1")));
        for bad in ["5", "5:", ":9", "05:9", "5:09", "5:-1", "5:0", "x:1", "+5:1", "-0:1"] {
            assert!(parse_message_id(&NetworkMessageId::new(bad).unwrap()).is_err(), "{bad}");
        }
        for bad in ["5", "x/alice.eth", "5/", "05/a"] {
            assert!(parse_conversation(&ConversationId::new(bad).unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn reaction_ids_name_their_message_user_emoji_and_update() {
        let target = MessageRef { chat: 42, message: 7 };
        let added = user_reaction_id(target, 42, "👍", 1005).unwrap();
        assert_eq!(added.as_str(), "42:7:reacted-42-f09f918d-u1005");
        assert_eq!(reaction_slot(target, 42, "👍").unwrap().as_str(), "42:7:reacted-42-f09f918d");
        let removed = reaction_removal_id(target, 42, "👍", 1006).unwrap();
        assert_eq!(removed.as_str(), "42:7:unreacted-42-f09f918d-u1006");
        for id in [&added, &removed] {
            let (message, suffix) = parse_message_id(id).unwrap();
            assert_eq!(message, target);
            assert!(is_user_reaction(suffix.unwrap()), "{id}");
        }
        // The bot's own reactions (`reaction-<key>`) and edits are not a user's.
        assert!(!is_user_reaction("reaction-k1"));
        assert!(!is_user_reaction("edit-1005"));
        // Another emoji, user or update is another id.
        assert_ne!(user_reaction_id(target, 42, "❤", 1005).unwrap(), added);
        assert_ne!(user_reaction_id(target, 43, "👍", 1005).unwrap(), added);
        assert_ne!(user_reaction_id(target, 42, "👍", 1007).unwrap(), added);
        // The longest reaction key still makes an id.
        let longest = "😀".repeat(dm3_bridge_connector::message::MAX_REACTION_KEY_BYTES / 4);
        let extreme = MessageRef { chat: i64::MIN, message: i32::MAX };
        assert!(user_reaction_id(extreme, u64::MAX, &longest, u32::MAX).is_ok());
        assert!(reaction_removal_id(extreme, u64::MAX, &longest, u32::MAX).is_ok());
    }

    #[test]
    fn too_long_names_are_refused_with_the_room_left() {
        let chat = 1_234_567_890_i64;
        let fits = RemoteIdentity::new("a".repeat(max_name_bytes(chat))).unwrap();
        assert!(conversation_id(chat, &fits).is_ok());
        let long = RemoteIdentity::new("a".repeat(250)).unwrap();
        assert_eq!(conversation_id(chat, &long), Err(IdsError::NameTooLong { len: 250, max: 244 }));
        assert_eq!(
            conversation_id(chat, &long).unwrap_err().to_string(),
            "the DM3 name is 250 bytes long; this bridge can hold names of at most 244 bytes"
        );
    }

    proptest! {
        #[test]
        fn conversation_ids_round_trip(chat in any::<i64>(), name in "[a-z0-9.-]{1,200}") {
            let contact = RemoteIdentity::new(name).unwrap();
            match conversation_id(chat, &contact) {
                Ok(id) => prop_assert_eq!(parse_conversation(&id).unwrap(), (chat, contact)),
                Err(IdsError::NameTooLong { len, max }) => prop_assert!(len > max),
                Err(e) => prop_assert!(false, "{e}"),
            }
        }

        #[test]
        fn message_ids_round_trip(chat in any::<i64>(), message in 1..i32::MAX) {
            let id = message_id(chat, message);
            prop_assert_eq!(parse_message_id(&id).unwrap(), (MessageRef { chat, message }, None));
        }

        #[test]
        fn message_id_parser_never_panics(s in "[-0-9:a-z]{1,40}") {
            if let Ok(id) = NetworkMessageId::new(s) {
                let _ = parse_message_id(&id);
            }
        }
    }
}
