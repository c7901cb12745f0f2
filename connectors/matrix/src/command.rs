//! Commands in a portal room: `!dm3 block`, `!dm3 unblock`, `!dm3 help` (docs/engine.md,
//! "Commands").
//!
//! A portal is the DM between a Matrix user and a DM3 user's ghost, so that is where the Matrix
//! user speaks to the bridge about that DM3 user, as in mautrix bridges, whose portal commands
//! start with a configurable prefix (`bridge.command_prefix`, `!wa`, `!signal`). Ours is
//! `matrix.command_prefix`, `!dm3` unless configured.
//!
//! A plain-text message (`m.text`) whose body starts with the prefix, followed by a space or
//! nothing, becomes an [`Inbound::Command`](dm3_bridge_connector::Inbound::Command), never a
//! message: the command text must not reach the DM3 user. An edit whose new text starts with
//! the prefix is dropped for the same reason (it is no command: commands are acted on once).
//! Notices and emotes are not commands (bots write notices). Who may command, and what the
//! words mean, is the engine's to decide with the shared vocabulary
//! ([`dm3_bridge_connector::command`]); this module only recognizes the syntax.

use std::fmt;

use dm3_bridge_connector::{Command, CommandRequest, ConversationId, NetworkMessageId, NetworkUserId};
use ruma::events::room::message::{MessageType, Relation};
use ruma::events::{AnyMessageLikeEvent, AnyTimelineEvent, MessageLikeEvent};
use ruma::serde::Raw;

use crate::ghost::GhostNamespace;

/// The prefix unless `matrix.command_prefix` says otherwise.
pub const DEFAULT_COMMAND_PREFIX: &str = "!dm3";
/// Longest prefix accepted, in bytes.
pub const MAX_COMMAND_PREFIX_BYTES: usize = 16;

/// The word that starts a command: 1 to [`MAX_COMMAND_PREFIX_BYTES`] bytes, no whitespace or
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPrefix(String);

/// Why a prefix is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a command prefix; use 1 to {MAX_COMMAND_PREFIX_BYTES} bytes without spaces, e.g. \"!dm3\""
)]
pub struct CommandPrefixError(pub String);

impl CommandPrefix {
    pub fn new(prefix: &str) -> Result<Self, CommandPrefixError> {
        let usable = !prefix.is_empty()
            && prefix.len() <= MAX_COMMAND_PREFIX_BYTES
            && !prefix.chars().any(|c| c.is_whitespace() || c.is_control());
        if usable { Ok(Self(prefix.to_owned())) } else { Err(CommandPrefixError(prefix.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What follows the prefix in `body`, if `body` is a command (the prefix's ASCII case
    /// ignored, leading whitespace too).
    pub fn strip<'a>(&self, body: &'a str) -> Option<&'a str> {
        let body = body.trim_start();
        let head = body.get(..self.0.len())?;
        let rest = &body[self.0.len()..];
        (head.eq_ignore_ascii_case(&self.0) && rest.chars().next().is_none_or(char::is_whitespace))
            .then_some(rest)
    }
}

impl Default for CommandPrefix {
    fn default() -> Self {
        Self(DEFAULT_COMMAND_PREFIX.to_owned())
    }
}

impl fmt::Display for CommandPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a timeline event is as a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recognized {
    Command(CommandRequest),
    /// An edit into command text: neither a command nor bridged.
    Dropped,
}

/// `raw` as a command of a Matrix user, if it is one.
pub fn recognize(
    raw: &Raw<AnyTimelineEvent>,
    ghosts: &GhostNamespace,
    prefix: &CommandPrefix,
) -> Option<Recognized> {
    let Ok(AnyTimelineEvent::MessageLike(AnyMessageLikeEvent::RoomMessage(MessageLikeEvent::Original(
        event,
    )))) = raw.deserialize()
    else {
        return None;
    };
    if ghosts.contains(&event.sender) {
        return None;
    }
    if let Some(Relation::Replacement(replacement)) = &event.content.relates_to {
        let MessageType::Text(text) = &replacement.new_content.msgtype else { return None };
        return prefix.strip(&text.body).map(|_| Recognized::Dropped);
    }
    let MessageType::Text(text) = &event.content.msgtype else { return None };
    let rest = prefix.strip(&text.body)?;
    let request = CommandRequest {
        conversation: ConversationId::new(event.room_id.as_str()).ok()?,
        sender: NetworkUserId::new(event.sender.as_str()).ok()?,
        network_event_id: NetworkMessageId::new(event.event_id.as_str()).ok()?,
        command: Command::parse(rest),
        prefix: prefix.to_string(),
    };
    Some(Recognized::Command(request))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use dm3_bridge_connector::CommandVerb;
    use serde_json::{Value, json};

    use super::*;

    fn ghosts() -> GhostNamespace {
        GhostNamespace::dm3(<&ruma::ServerName>::try_from("localhost").unwrap())
    }

    fn message(sender: &str, content: Value) -> Raw<AnyTimelineEvent> {
        Raw::new(&json!({
            "type": "m.room.message", "event_id": "$cmd", "room_id": "!room", "sender": sender,
            "origin_server_ts": 1, "content": content,
        }))
        .unwrap()
        .cast_unchecked()
    }

    fn text(body: &str) -> Raw<AnyTimelineEvent> {
        message("@bob:localhost", json!({"msgtype": "m.text", "body": body}))
    }

    #[test]
    fn a_text_starting_with_the_prefix_is_a_command() {
        let prefix = CommandPrefix::default();
        let Some(Recognized::Command(request)) = recognize(&text("  !DM3 Block "), &ghosts(), &prefix) else {
            panic!()
        };
        assert_eq!(request.command, Command::Known { verb: CommandVerb::Block, argument: None });
        assert_eq!((request.sender.as_str(), request.network_event_id.as_str()), ("@bob:localhost", "$cmd"));
        assert_eq!(request.prefix, "!dm3");
        let Some(Recognized::Command(help)) = recognize(&text("!dm3"), &ghosts(), &prefix) else { panic!() };
        assert_eq!(help.command, Command::Known { verb: CommandVerb::Help, argument: None });
        let other = CommandPrefix::new("!bridge").unwrap();
        assert!(recognize(&text("!bridge unblock"), &ghosts(), &other).is_some());
        assert!(recognize(&text("!dm3 block"), &ghosts(), &other).is_none());
    }

    #[test]
    fn everything_else_is_not_a_command() {
        let prefix = CommandPrefix::default();
        for body in ["!dm3block", "hello !dm3 block", "!dm", "", "> <@bob:localhost> !dm3 block\n\nok"] {
            assert_eq!(recognize(&text(body), &ghosts(), &prefix), None, "{body:?}");
        }
        let notice = message("@bob:localhost", json!({"msgtype": "m.notice", "body": "!dm3 block"}));
        assert_eq!(recognize(&notice, &ghosts(), &prefix), None);
        let echo = message("@_dm3_alice.eth:localhost", json!({"msgtype": "m.text", "body": "!dm3 block"}));
        assert_eq!(recognize(&echo, &ghosts(), &prefix), None, "a ghost's own text is no command");
        let edit = message(
            "@bob:localhost",
            json!({"msgtype": "m.text", "body": "* !dm3 block",
                   "m.new_content": {"msgtype": "m.text", "body": "!dm3 block"},
                   "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"}}),
        );
        assert_eq!(recognize(&edit, &ghosts(), &prefix), Some(Recognized::Dropped));
    }

    #[test]
    fn prefixes_are_bounded_words() {
        assert!(CommandPrefix::new("").is_err());
        assert!(CommandPrefix::new("!d m3").is_err());
        assert!(CommandPrefix::new(&"x".repeat(MAX_COMMAND_PREFIX_BYTES + 1)).is_err());
        assert_eq!(CommandPrefix::new("!dm3").unwrap(), CommandPrefix::default());
        assert_eq!(CommandPrefix::default().strip("!dm3é"), None, "a prefix ends at a word boundary");
        assert_eq!(CommandPrefix::new("é").unwrap().strip("éé"), None);
    }
}
