//! A network user's command in the conversation with a DM3 user (Matrix: `!dm3 block` in the
//! portal room), carried out and answered there by the DM3 user's stand-in (docs/engine.md,
//! "Commands").
//!
//! The command arrives as an outbox job like a message, so it is durable, once, and in the
//! conversation's order. Only the portal's own network user may command: anyone else in the
//! room (a member invited in, a relay bot posting for someone elsewhere) is refused with a
//! notice and changes nothing, since the block is theirs to set. The block itself goes through
//! [`super::blocks::change`], the store path Telegram's `/block` takes too, so the relay's
//! submit refuses the sender (-32012) and the inbox drops what was queued before, for both
//! networks alike.
//!
//! `claim` is the claim of gateway mode (docs/gateway.md section 3, [`super::claims`]) for the
//! portal's user, the command's authenticated sender: the challenge, or the signed claim.
//!
//! An unblock lifts the block and nothing else: a portal the user suspended by leaving stays
//! suspended (they are no longer in its room to command anyway); inviting the ghost to a new
//! direct chat reopens it, as it always did, and the answer to a block says so.

use dm3::ens::EnsName;
use dm3_bridge_connector::command::help;
use dm3_bridge_connector::{
    Command, CommandRequest, CommandVerb, Connector, Content, IdempotencyKey, Message, Outbound,
    RemoteIdentity, Text,
};

use super::blocks::{self, BlockChange};
use super::claims::answer_claim;
use super::parts::{EngineParts, Failure};
use crate::clock::now_ms;
use crate::store::{MAX_BLOCKS_PER_IDENTITY, Portal, PortalState};

impl EngineParts {
    /// Carries out `request` in its portal and answers it there; a conversation that is no
    /// portal has no stand-in to answer, and the command is ignored.
    pub async fn command(&self, connector: &dyn Connector, request: &CommandRequest) -> Result<(), Failure> {
        let portal = self
            .store
            .portal_by_conversation(connector.network(), &request.conversation)
            .await
            .map_err(Failure::store)?;
        let Some(portal) = portal else {
            tracing::debug!(conversation = %request.conversation, "a command outside any portal; ignored");
            return Ok(());
        };
        let answer = self.answer(&portal, request).await?;
        let remote = RemoteIdentity::new(portal.remote_name.as_str()).map_err(Failure::permanent)?;
        let digest = dm3::hash::sha256_hex(request.network_event_id.as_str());
        let key = format!("command-{}", digest.trim_start_matches("0x"));
        let notice = Outbound {
            conversation: request.conversation.clone(),
            sender: remote,
            idempotency_key: IdempotencyKey::new(key).map_err(Failure::permanent)?,
            timestamp_ms: None,
            retry: false,
            payload: Message::new(Content::Notice(Text::plain(answer))),
        };
        connector.send_message(&notice).await.map(|_| ()).map_err(Failure::connector)
    }

    /// Does what `request` asks, if its sender may, and says what happened.
    async fn answer(&self, portal: &Portal, request: &CommandRequest) -> Result<String, Failure> {
        let identity = self.vault.recent(&portal.local_name).await.map_err(Failure::identity)?;
        let owner = identity.user.user_id();
        if owner != request.sender.as_str() {
            tracing::info!(
                sender = %request.sender, conversation = %request.conversation,
                "a command by someone other than the portal's user refused"
            );
            return Ok(format!("Only {owner} can give the bridge commands in this room: nothing changed."));
        }
        let (remote, prefix) = (&portal.remote_name, request.prefix.as_str());
        let (verb, argument) = match &request.command {
            Command::Unknown { word } => {
                return Ok(format!("There is no command \"{prefix} {word}\".\n{}", help(prefix)));
            }
            Command::Known { verb: CommandVerb::Help, .. } => return Ok(help(prefix)),
            // The account is the portal's user, whom the sender just proved to be.
            Command::Known { verb: CommandVerb::Claim, argument } => {
                let command = format!("{prefix} {}", CommandVerb::Claim.word());
                let reply =
                    answer_claim(&self.vault, &identity.user, argument.as_deref(), &command, now_ms())
                        .await
                        .map_err(Failure::retry)?;
                return Ok(match reply.challenge {
                    Some(challenge) => format!("{}\n\n{challenge}", reply.text),
                    None => reply.text,
                });
            }
            Command::Known { verb, argument } => (*verb, argument.as_deref()),
        };
        if let Some(argument) = argument
            && EnsName::parse(argument).ok().as_ref() != Some(remote)
        {
            return Ok(format!(
                "In this room, \"{prefix} {}\" is about {remote}, whom the room is with, and takes no other \
                 name: nothing changed.",
                verb.word()
            ));
        }
        let blocked = verb == CommandVerb::Block;
        let change = blocks::change(&self.store, &portal.local_name, remote, blocked, now_ms())
            .await
            .map_err(Failure::store)?;
        tracing::info!(identity = %portal.local_name, sender = %remote, ?change, "a block changed by command");
        Ok(match change {
            BlockChange::Blocked | BlockChange::AlreadyBlocked => format!(
                "{remote} is blocked: the bridge refuses their messages to you and tells them so when they \
                 write. Send \"{prefix} unblock\" here to take their messages again. (Leaving this room refuses \
                 them too; then inviting them to a new direct chat opens it again.)"
            ),
            BlockChange::Full => format!(
                "You have blocked {MAX_BLOCKS_PER_IDENTITY} DM3 users, the most this bridge keeps for one \
                 person, so {remote} is not blocked. Unblock someone first."
            ),
            BlockChange::Unblocked | BlockChange::NotBlocked => match &portal.state {
                PortalState::Live => format!("{remote} is not blocked: their messages reach you again."),
                PortalState::Suspended { reason } => format!(
                    "{remote} is not blocked any more, but this room carries no messages for now: {reason}."
                ),
                PortalState::CiphertextOnly { reason } => format!(
                    "{remote} is not blocked any more, but this room carries only what their DM3 client \
                     encrypts itself: {reason}."
                ),
            },
        })
    }
}
