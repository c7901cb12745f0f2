//! The commands a network user gives the bridge about a DM3 user: one vocabulary for every
//! network (docs/engine.md, "Commands").
//!
//! Each network writes a command its own way (Telegram `/block` to the bot, Matrix `!dm3 block`
//! in the portal room), but the verbs, what they mean and how they are described are the same,
//! so they live here once: a connector parses its syntax down to a [`CommandVerb`], and the help
//! either network shows lists the same lines ([`CommandVerb::summary`]).
//!
//! A connector whose commands are given in the conversation with the DM3 user (Matrix) hands
//! the engine a [`CommandRequest`]: the engine, which knows who owns the portal and keeps the
//! blocks, decides and answers there. It rides the inbound queue like a message, so it is
//! durable, deduplicated by its event id, and ordered with the conversation's messages (a
//! message sent before `block` is bridged before it).

use serde::{Deserialize, Serialize};

use crate::id::{ConversationId, NetworkMessageId, NetworkUserId};

/// Longest argument kept from a command, in bytes: enough for any DM3 name (ENS names are
/// bounded well below), so a longer one is not a name and is refused as such.
pub const MAX_COMMAND_ARGUMENT_BYTES: usize = 255;
/// Longest argument kept from `claim`: the signed claim's JSON (docs/gateway.md section 3),
/// which the node bounds to 16 KiB; one byte more is kept, so a longer one is refused as such.
pub const MAX_CLAIM_ARGUMENT_BYTES: usize = 16 * 1024;

/// What a network user can ask the bridge about a DM3 user, on every network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandVerb {
    /// The bridge refuses the DM3 user's messages to this network user (docs/relay.md, "Block
    /// and rate limits").
    Block,
    /// Lifts the block.
    Unblock,
    /// Takes the user's own DM3 name for a wallet they hold (gateway mode, docs/gateway.md
    /// section 3): without an argument, the challenge to sign; with the signed claim's JSON,
    /// the claim. The account is always the command's authenticated sender.
    Claim,
    /// Lists the commands.
    Help,
}

impl CommandVerb {
    /// Every verb, in the order help lists them.
    pub const ALL: [CommandVerb; 4] =
        [CommandVerb::Block, CommandVerb::Unblock, CommandVerb::Claim, CommandVerb::Help];

    /// The verb `word` names (ASCII case ignored), if any.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|verb| verb.word().eq_ignore_ascii_case(word))
    }

    /// Longest argument kept for it, in bytes.
    pub fn max_argument_bytes(self) -> usize {
        match self {
            CommandVerb::Claim => MAX_CLAIM_ARGUMENT_BYTES,
            _ => MAX_COMMAND_ARGUMENT_BYTES,
        }
    }

    /// The word that names it.
    pub fn word(self) -> &'static str {
        match self {
            CommandVerb::Block => "block",
            CommandVerb::Unblock => "unblock",
            CommandVerb::Claim => "claim",
            CommandVerb::Help => "help",
        }
    }

    /// What it does, in a line of help.
    pub fn summary(self) -> &'static str {
        match self {
            CommandVerb::Block => "refuse this DM3 user's messages; they are told so when they write",
            CommandVerb::Unblock => "take their messages again",
            CommandVerb::Claim => {
                "hold your DM3 name with your own wallet (gateway mode): without more, the challenge to sign; \
                 then the signed claim's JSON"
            }
            CommandVerb::Help => "this list",
        }
    }
}

/// A command as the network user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// A verb of the vocabulary, with what followed it (trimmed, at most the verb's
    /// [`CommandVerb::max_argument_bytes`] and one byte; longer is cut, and then names nobody).
    Known { verb: CommandVerb, argument: Option<String> },
    /// A word that is no verb (at most [`MAX_COMMAND_ARGUMENT_BYTES`]), answered with the help.
    Unknown { word: String },
}

impl Command {
    /// The command `text` holds once the network's prefix is taken off: a verb and its
    /// argument; no word at all asks for help.
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        if word.is_empty() {
            return Command::Known { verb: CommandVerb::Help, argument: None };
        }
        match CommandVerb::parse(word) {
            Some(verb) => {
                let rest = rest.trim();
                let argument = (!rest.is_empty()).then(|| bounded(rest, verb.max_argument_bytes()));
                Command::Known { verb, argument }
            }
            None => Command::Unknown { word: bounded(word, MAX_COMMAND_ARGUMENT_BYTES) },
        }
    }
}

fn bounded(text: &str, max: usize) -> String {
    let mut end = text.len().min(max + 1);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// A network user's command in the conversation with a DM3 user (Matrix: `!dm3 block` in the
/// portal room), for the engine to carry out and answer there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRequest {
    /// Where: the portal.
    pub conversation: ConversationId,
    /// Who wrote it; only the portal's own network user may (the engine checks).
    pub sender: NetworkUserId,
    /// The network's id of the message that held it: the key that makes a replay a duplicate.
    pub network_event_id: NetworkMessageId,
    pub command: Command,
    /// How a command is written here (`!dm3`), so that answers name the next command as the
    /// user types it.
    pub prefix: String,
}

/// The help of a network whose commands are written `<prefix> <verb>`: one line per verb.
pub fn help(prefix: &str) -> String {
    let mut text = "Commands of the DM3 bridge in this room:".to_owned();
    for verb in CommandVerb::ALL {
        text.push_str(&format!("\n{prefix} {} — {}", verb.word(), verb.summary()));
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn commands_parse_to_the_shared_verbs() {
        let known =
            |verb, argument: Option<&str>| Command::Known { verb, argument: argument.map(str::to_owned) };
        assert_eq!(Command::parse(" block "), known(CommandVerb::Block, None));
        assert_eq!(Command::parse("UNBLOCK  alice.eth "), known(CommandVerb::Unblock, Some("alice.eth")));
        assert_eq!(Command::parse(""), known(CommandVerb::Help, None));
        assert_eq!(Command::parse("help me"), known(CommandVerb::Help, Some("me")));
        assert_eq!(Command::parse("frobnicate x"), Command::Unknown { word: "frobnicate".to_owned() });
        let long = format!("block {}", "é".repeat(400));
        let Command::Known { argument: Some(argument), .. } = Command::parse(&long) else { unreachable!() };
        assert!(
            argument.len() <= MAX_COMMAND_ARGUMENT_BYTES + 1
                && argument.len() > MAX_COMMAND_ARGUMENT_BYTES - 2
        );
        assert_eq!(CommandVerb::parse("Block"), Some(CommandVerb::Block));
        assert!(help("!dm3").contains("!dm3 unblock — take their messages again"));
        assert!(help("!dm3").contains("!dm3 claim — hold your DM3 name with your own wallet"));
        // A claim's JSON is kept whole, up to its own bound.
        let claim = format!("claim {{\"challenge\": \"{}\"}}", "x".repeat(2000));
        let Command::Known { verb: CommandVerb::Claim, argument: Some(argument) } = Command::parse(&claim)
        else {
            unreachable!()
        };
        assert_eq!(argument.len(), claim.len() - "claim ".len());
    }
}
