//! A Telegram user's reactions, as DM3 REACTIONs and as their taking back.
//!
//! Telegram reports a `message_reaction` update with the user's whole list of reactions on the
//! message before and after the change (`old_reaction`, `new_reaction`), not the change
//! itself, so the connector compares the two ([`changes`]):
//! - an emoji in the new list only is a [`Reaction`] to the reacted-to message (a DM3 REACTION
//!   whose `referenceMessageHash` the engine finds in its message map);
//! - an emoji in the old list only is a [`Delete`] of the reaction event that added it. DM3
//!   takes a reaction back with a DELETE_REQUEST of the REACTION (docs/protocol.md §5.2: a
//!   DELETE_REQUEST blanks its target; the messenger drops a deleted REACTION with it), as the
//!   Matrix connector does for a redacted `m.reaction`. Telegram does not say which update
//!   added the emoji, so the connector remembers it in the chat state
//!   ([`ChatState::record_reaction`](crate::state::ChatState::record_reaction), as a
//!   [`StateChange::Reaction`] of the plan), under the emoji's [`ids::reaction_slot`].
//!
//! Removals come first, so swapping 👍 for ❤ (one reaction per message without Premium) reads as
//! taking 👍 back, then reacting ❤.
//!
//! The conversation is the reacted-to message's route, as for a reply: a reaction to alice's
//! relayed message goes to alice, whoever the current contact is. A reaction to a message the
//! bridge did not relay (a command, the bot's own answer, a message older than the routes kept)
//! has no DM3 counterpart and is dropped with a log line; the update is still confirmed.
//!
//! Custom emoji and paid (star) reactions are skipped with a debug line: a DM3 reaction is an
//! emoji as text, and a custom emoji id would show as a number. Telegram delivers reactions to
//! a bot in its private chats (in groups only to administrators; the bridge carries private
//! chats only), and never reports the reactions a bot set, so the bot's own reactions (DM3 →
//! Telegram) do not come back here.

use dm3_bridge_connector::{
    Delete, EventKind, IdError, Inbound, InboundEvent, NetworkMessageId, Reaction, ReactionKey,
};
use teloxide_core::types::{MessageReactionUpdated, ReactionType};

use crate::handler::{Plan, StateChange, Stop, UpdateHandler, refused, with_millis};
use crate::ids::{self, MessageRef};

/// What changed between two lists of a user's reactions, in emoji DM3 can carry.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// In the old list and not in the new one, in the old list's order.
    pub(crate) removed: Vec<ReactionKey>,
    /// In the new list and not in the old one, in the new list's order.
    pub(crate) added: Vec<ReactionKey>,
}

/// The emoji taken back and added between `old` and `new`; custom emoji, paid reactions and
/// emoji that are no reaction key are left out.
pub(crate) fn changes(old: &[ReactionType], new: &[ReactionType]) -> Changes {
    let (old, new) = (emoji_of(old), emoji_of(new));
    let only_in = |list: &[ReactionKey], other: &[ReactionKey]| {
        let mut only: Vec<ReactionKey> = Vec::new();
        for key in list {
            if !other.contains(key) && !only.contains(key) {
                only.push(key.clone());
            }
        }
        only
    };
    Changes { removed: only_in(&old, &new), added: only_in(&new, &old) }
}

fn emoji_of(reactions: &[ReactionType]) -> Vec<ReactionKey> {
    reactions
        .iter()
        .filter_map(|reaction| match reaction {
            ReactionType::Emoji { emoji } => match ReactionKey::new(emoji.as_str()) {
                Ok(key) => Some(key),
                Err(e) => {
                    tracing::debug!(error = %e, "a reaction emoji that is no reaction key; skipped");
                    None
                }
            },
            ReactionType::CustomEmoji { .. } => {
                tracing::debug!("a custom emoji reaction; DM3 has no form for it, skipped");
                None
            }
            ReactionType::Paid => {
                tracing::debug!("a paid reaction; DM3 has no form for it, skipped");
                None
            }
        })
        .collect()
}

impl UpdateHandler {
    /// A user changed their reactions on a message of their chat with the bot.
    pub(crate) async fn plan_reaction(
        &self,
        update_id: u32,
        update: &MessageReactionUpdated,
    ) -> Result<Plan, Stop> {
        let chat = update.chat.id.0;
        let Some(user) = update.user().filter(|user| !user.is_bot && update.chat.is_private()) else {
            tracing::debug!(chat, "a reaction outside a private chat with a person; ignored");
            return Ok(Plan::default());
        };
        if !self.policy.allows(user.id.0) {
            return Ok(Plan::default());
        }
        let target = MessageRef { chat, message: update.message_id.0 };
        let target_id = ids::message_id(chat, target.message);
        let Some(conversation) = self.state.route_of(&target_id).await.map_err(refused(chat))? else {
            tracing::info!(
                chat,
                message = target.message,
                "a reaction to a message the bridge did not relay; dropped"
            );
            return Ok(Plan::default());
        };
        let sender = ids::user_id(user.id.0);
        // Dated in seconds, like edits; the update id tells a second's reactions apart.
        let timestamp_ms =
            with_millis(update.date.timestamp_millis(), i32::try_from(update_id % 1000).unwrap_or(0));
        let event = |network_event_id: NetworkMessageId, kind: EventKind| {
            Inbound::Event(InboundEvent {
                conversation: conversation.clone(),
                sender: sender.clone(),
                network_event_id,
                timestamp_ms,
                kind,
                original: None,
            })
        };
        let user = user.id.0;
        let Changes { removed, added } = changes(&update.old_reaction, &update.new_reaction);
        let (mut items, mut changes) = (Vec::new(), Vec::new());
        for key in removed {
            let emoji = key.as_str();
            let Some((slot, id)) = usable(
                ids::reaction_slot(target, user, emoji),
                ids::reaction_removal_id(target, user, emoji, update_id),
            ) else {
                continue;
            };
            match self.state.reaction_in(&slot).await.map_err(refused(chat))? {
                Some(added) => {
                    items.push(event(id, EventKind::Delete(Delete { target: added, reason: None })))
                }
                None => tracing::debug!(chat, emoji, "a reaction the bridge never relayed was taken back"),
            }
        }
        for key in added {
            let emoji = key.as_str();
            let Some((slot, id)) = usable(
                ids::reaction_slot(target, user, emoji),
                ids::user_reaction_id(target, user, emoji, update_id),
            ) else {
                continue;
            };
            changes.push(StateChange::Reaction { slot, reaction: id.clone() });
            items.push(event(id, EventKind::Reaction(Reaction { target: target_id.clone(), key })));
        }
        Ok(Plan { items, changes, ..Plan::default() })
    }
}

/// Both ids, or `None` with a log line. They always fit (a reaction key is at most 64 bytes;
/// `ids` tests the longest); skipping rather than retrying keeps a surprise from holding up
/// the chat's later updates.
fn usable(
    slot: Result<NetworkMessageId, IdError>,
    id: Result<NetworkMessageId, IdError>,
) -> Option<(NetworkMessageId, NetworkMessageId)> {
    match (slot, id) {
        (Ok(slot), Ok(id)) => Some((slot, id)),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "no id for a reaction; skipped");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use proptest::prelude::*;
    use teloxide_core::types::CustomEmojiId;

    use super::*;

    fn emoji(e: &str) -> ReactionType {
        ReactionType::Emoji { emoji: e.to_owned() }
    }

    fn keys(list: &[&str]) -> Vec<ReactionKey> {
        list.iter().map(|k| ReactionKey::new(*k).unwrap()).collect()
    }

    #[test]
    fn added_and_removed_emoji_are_told_apart() {
        assert_eq!(changes(&[], &[emoji("👍")]), Changes { removed: vec![], added: keys(&["👍"]) });
        assert_eq!(changes(&[emoji("👍")], &[]), Changes { removed: keys(&["👍"]), added: vec![] });
        assert_eq!(
            changes(&[emoji("👍")], &[emoji("❤")]),
            Changes { removed: keys(&["👍"]), added: keys(&["❤"]) }
        );
        assert_eq!(
            changes(&[emoji("👍"), emoji("🔥")], &[emoji("🔥"), emoji("👍"), emoji("🎉")]),
            Changes { removed: vec![], added: keys(&["🎉"]) },
            "order does not matter, only membership"
        );
        assert_eq!(changes(&[emoji("👍")], &[emoji("👍")]), Changes::default());
        assert_eq!(changes(&[], &[emoji("👍"), emoji("👍")]).added, keys(&["👍"]), "one reaction per emoji");
    }

    #[test]
    fn custom_paid_and_unusable_reactions_are_skipped() {
        let custom =
            ReactionType::CustomEmoji { custom_emoji_id: CustomEmojiId("5368324170671202286".into()) };
        assert_eq!(changes(&[], &[custom.clone(), ReactionType::Paid]), Changes::default());
        assert_eq!(changes(&[custom, ReactionType::Paid], &[]), Changes::default());
        assert_eq!(changes(&[], &[emoji(""), emoji("a\u{0}"), emoji("👌")]).added, keys(&["👌"]));
    }

    /// The old list, changed as [`changes`] says, is the new list (as sets of emoji).
    fn applied(old: &[String], change: &Changes) -> std::collections::BTreeSet<String> {
        let mut set: std::collections::BTreeSet<String> = old.iter().cloned().collect();
        for key in &change.removed {
            assert!(set.remove(key.as_str()), "{key:?} was removed but not there");
        }
        for key in &change.added {
            assert!(set.insert(key.as_str().to_owned()), "{key:?} was added but there already");
        }
        set
    }

    fn some_emoji() -> impl Strategy<Value = String> {
        proptest::sample::select(&["👍", "👎", "❤", "🔥", "🎉"][..]).prop_map(str::to_owned)
    }

    proptest! {
        #[test]
        fn changes_turn_the_old_list_into_the_new(
            old in proptest::collection::vec(some_emoji(), 0..4),
            new in proptest::collection::vec(some_emoji(), 0..4),
        ) {
            let as_reactions = |list: &[String]| list.iter().map(|e| emoji(e)).collect::<Vec<_>>();
            let change = changes(&as_reactions(&old), &as_reactions(&new));
            prop_assert_eq!(applied(&old, &change), new.iter().cloned().collect());
        }
    }
}
