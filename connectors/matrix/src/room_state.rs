//! Whether a room may be a portal, decided from its state as the homeserver holds it now.
//!
//! A portal carries a DM3 conversation between two people, so the room must be a direct chat
//! that nobody else can read (docs/engine.md, "Portal lifecycle"): the ghost joined, its user
//! joined or invited, nobody else joined or invited, a join rule that lets nobody in uninvited
//! (`invite`, `knock`, `private`), a history that is not `world_readable`, and no end-to-end
//! encryption (the bridge does not speak Megolm yet, so it would post plaintext into a room its
//! members believe encrypted). [`RoomFacts::verdict`] says which rule a room breaks, in words
//! the room's members and the DM3 user are both shown.
//!
//! The state is read as loose JSON, not through typed events: a room can hold events the typed
//! model refuses (custom membership values, a bad `content`), and one odd event must not make
//! a room unreadable, only count as what it most safely means (an unknown join rule is open).

use std::collections::BTreeMap;

use dm3_bridge_connector::PortalStatus;
use ruma::events::AnyStateEvent;
use ruma::serde::Raw;
use ruma::{OwnedRoomId, RoomId, UserId};
use serde::Deserialize;

use crate::encryption::ENCRYPTION_NOT_BRIDGED;

/// Why a room whose stand-in left is not bridged.
pub const GHOST_NOT_IN_ROOM: &str = "the DM3 contact's stand-in is no longer in this room";

/// The end of the reason given for a room with members besides the user and the ghost.
pub const GROUP_NOT_BRIDGED: &str = "the DM3 bridge only bridges direct chats between two people";

/// At most this many other members are named in a reason.
const NAMED_MEMBERS: usize = 3;

/// What decides whether a room may be a portal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomFacts {
    /// Every user with a membership, by user id: `join`, `invite`, `leave`, `ban`, `knock`.
    pub memberships: BTreeMap<String, String>,
    pub join_rule: Option<String>,
    pub history_visibility: Option<String>,
    /// The `algorithm` of `m.room.encryption`, when the room has it.
    pub encryption: Option<String>,
    /// The room that replaced this one (`m.room.tombstone`).
    pub successor: Option<OwnedRoomId>,
}

#[derive(Deserialize)]
struct LooseEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    state_key: String,
    #[serde(default)]
    content: serde_json::Map<String, serde_json::Value>,
}

impl RoomFacts {
    /// The facts in a room's full state (`GET /rooms/{roomId}/state`).
    pub fn from_state(events: &[Raw<AnyStateEvent>]) -> Self {
        let mut facts = RoomFacts::default();
        for raw in events {
            let Ok(event) = raw.deserialize_as_unchecked::<LooseEvent>() else { continue };
            let text = |key: &str| event.content.get(key).and_then(|v| v.as_str()).map(str::to_owned);
            match event.kind.as_str() {
                "m.room.member" => {
                    if let Some(membership) = text("membership") {
                        facts.memberships.insert(event.state_key.clone(), membership);
                    }
                }
                "m.room.join_rules" if event.state_key.is_empty() => facts.join_rule = text("join_rule"),
                "m.room.history_visibility" if event.state_key.is_empty() => {
                    facts.history_visibility = text("history_visibility")
                }
                // Any content at all turns encryption on; clients do not read it otherwise.
                "m.room.encryption" if event.state_key.is_empty() => {
                    facts.encryption = Some(text("algorithm").unwrap_or_default())
                }
                "m.room.tombstone" if event.state_key.is_empty() => {
                    facts.successor = text("replacement_room").and_then(|id| RoomId::parse(id).ok())
                }
                _ => {}
            }
        }
        facts
    }

    fn membership(&self, user: &UserId) -> Option<&str> {
        self.memberships.get(user.as_str()).map(String::as_str)
    }

    /// Where the portal between `ghost` and `user` in this room stands: the [`verdict`](Self::verdict),
    /// told apart by the user's membership (invited only: their consent is pending; gone: they
    /// left or rejected the invite). A ghost no longer in the room is a suspension, whatever
    /// the user did.
    pub fn status(&self, ghost: &UserId, user: &UserId) -> PortalStatus {
        // A DM of the two whose only fault is encryption still carries a client's own
        // ciphertext (docs/bridge-payload.md §6); encryption with any other fault carries nothing.
        if self.encryption.is_some() {
            let unencrypted = RoomFacts { encryption: None, ..self.clone() };
            if matches!(unencrypted.status(ghost, user), PortalStatus::Live | PortalStatus::Invited) {
                return PortalStatus::CiphertextOnly { reason: ENCRYPTION_NOT_BRIDGED.to_owned() };
            }
        }
        match (self.verdict(ghost, user), self.membership(user)) {
            (Ok(()), Some("invite")) => PortalStatus::Invited,
            (Ok(()), _) => PortalStatus::Live,
            (Err(reason), _) if self.membership(ghost) != Some("join") => PortalStatus::Suspended { reason },
            (Err(_), membership) if !matches!(membership, Some("join" | "invite")) => {
                PortalStatus::Left { reason: format!("{user} left this room") }
            }
            (Err(reason), _) => PortalStatus::Suspended { reason },
        }
    }

    /// `Ok` if the room may carry the conversation between `ghost` and `user`, else why not.
    pub fn verdict(&self, ghost: &UserId, user: &UserId) -> Result<(), String> {
        if self.membership(ghost) != Some("join") {
            return Err(GHOST_NOT_IN_ROOM.to_owned());
        }
        if self.encryption.is_some() {
            return Err(ENCRYPTION_NOT_BRIDGED.to_owned());
        }
        let others: Vec<&str> = self
            .memberships
            .iter()
            .filter(|(member, membership)| {
                matches!(membership.as_str(), "join" | "invite")
                    && member.as_str() != ghost.as_str()
                    && member.as_str() != user.as_str()
            })
            .map(|(member, _)| member.as_str())
            .collect();
        if !others.is_empty() {
            let mut named = others.iter().take(NAMED_MEMBERS).copied().collect::<Vec<_>>().join(", ");
            if others.len() > NAMED_MEMBERS {
                named.push_str(&format!(" and {} more", others.len() - NAMED_MEMBERS));
            }
            return Err(format!("{named} joined or was invited, and {GROUP_NOT_BRIDGED}"));
        }
        if !matches!(self.membership(user), Some("join" | "invite")) {
            return Err(format!("{user} left this room"));
        }
        match self.join_rule.as_deref() {
            None | Some("invite" | "knock" | "private") => {}
            Some(rule) => {
                return Err(format!(
                    "people can join this room without an invite (join rule `{rule}`), so it is not private"
                ));
            }
        }
        if self.history_visibility.as_deref() == Some("world_readable") {
            return Err("anyone can read this room's history, so it is not private".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use ruma::user_id;
    use serde_json::{Value, json};

    use super::*;

    const GHOST: &str = "@_dm3_alice.eth:hs";
    const BOB: &str = "@bob:hs";

    fn member(user: &str, membership: &str) -> Value {
        json!({"type": "m.room.member", "state_key": user, "sender": user, "content": {"membership": membership}})
    }

    fn state(kind: &str, content: Value) -> Value {
        json!({"type": kind, "state_key": "", "sender": BOB, "content": content})
    }

    fn facts(events: Vec<Value>) -> RoomFacts {
        let raws: Vec<Raw<AnyStateEvent>> =
            events.iter().map(|e| Raw::new(e).unwrap().cast_unchecked()).collect();
        RoomFacts::from_state(&raws)
    }

    fn verdict(events: Vec<Value>) -> Result<(), String> {
        facts(events).verdict(user_id!("@_dm3_alice.eth:hs"), user_id!("@bob:hs"))
    }

    fn dm(extra: Vec<Value>) -> Vec<Value> {
        let mut events = vec![
            member(GHOST, "join"),
            member(BOB, "join"),
            state("m.room.join_rules", json!({"join_rule": "invite"})),
            state("m.room.history_visibility", json!({"history_visibility": "shared"})),
        ];
        events.extend(extra);
        events
    }

    #[test]
    fn the_status_tells_consent_pending_from_given_and_a_decline_from_a_suspension() {
        let status = |extra| facts(dm(extra)).status(user_id!("@_dm3_alice.eth:hs"), user_id!("@bob:hs"));
        assert_eq!(status(vec![]), PortalStatus::Live);
        assert_eq!(status(vec![member(BOB, "invite")]), PortalStatus::Invited, "the invite is pending");
        for gone in ["leave", "ban"] {
            assert_eq!(
                status(vec![member(BOB, gone)]),
                PortalStatus::Left { reason: "@bob:hs left this room".to_owned() },
                "{gone}: a rejected invite is a leave"
            );
        }
        let third = status(vec![member(BOB, "invite"), member("@eve:hs", "join")]);
        assert!(matches!(third, PortalStatus::Suspended { .. }), "{third:?}");
        let kicked = status(vec![member(BOB, "leave"), member(GHOST, "leave")]);
        assert_eq!(kicked, PortalStatus::Suspended { reason: GHOST_NOT_IN_ROOM.to_owned() });
    }

    #[test]
    fn an_encrypted_dm_carries_only_ciphertext_and_an_encrypted_group_nothing() {
        let status = |extra| facts(dm(extra)).status(user_id!("@_dm3_alice.eth:hs"), user_id!("@bob:hs"));
        let encryption = || state("m.room.encryption", json!({"algorithm": "m.megolm.v1.aes-sha2"}));
        let only_ciphertext = PortalStatus::CiphertextOnly { reason: ENCRYPTION_NOT_BRIDGED.to_owned() };
        assert_eq!(status(vec![encryption()]), only_ciphertext);
        assert_eq!(status(vec![encryption(), member(BOB, "invite")]), only_ciphertext);
        let group = status(vec![encryption(), member("@eve:hs", "join")]);
        assert_eq!(group, PortalStatus::Suspended { reason: ENCRYPTION_NOT_BRIDGED.to_owned() });
        let left = status(vec![encryption(), member(BOB, "leave")]);
        assert!(matches!(left, PortalStatus::Left { .. }), "{left:?}");
    }

    #[test]
    fn a_direct_chat_of_the_two_qualifies_and_an_invited_user_counts_as_in_it() {
        assert_eq!(verdict(dm(vec![])), Ok(()));
        assert_eq!(verdict(dm(vec![member(BOB, "invite")])), Ok(()), "a DM the ghost opened");
        assert_eq!(verdict(dm(vec![member("@eve:hs", "leave"), member("@frank:hs", "ban")])), Ok(()));
        assert_eq!(verdict(dm(vec![member("@eve:hs", "knock")])), Ok(()), "a knock lets nobody in");
        assert_eq!(verdict(dm(vec![state("m.room.join_rules", json!({"join_rule": "knock"}))])), Ok(()));
    }

    #[test]
    fn every_way_out_of_a_direct_chat_is_named() {
        let eve = verdict(dm(vec![member("@eve:hs", "join")])).unwrap_err();
        assert!(eve.starts_with("@eve:hs joined or was invited"), "{eve}");
        let invited = verdict(dm(vec![member("@eve:hs", "invite")])).unwrap_err();
        assert!(invited.contains("@eve:hs"), "an invitee may read what follows: {invited}");
        let many: Vec<Value> = (0..5).map(|i| member(&format!("@u{i}:hs"), "join")).collect();
        assert!(verdict(dm(many)).unwrap_err().contains("@u0:hs, @u1:hs, @u2:hs and 2 more"));
        assert_eq!(verdict(dm(vec![member(BOB, "leave")])), Err("@bob:hs left this room".to_owned()));
        assert_eq!(verdict(dm(vec![member(GHOST, "leave")])), Err(GHOST_NOT_IN_ROOM.to_owned()));
        for rule in ["public", "restricted", "knock_restricted", "something.new"] {
            let open = verdict(dm(vec![state("m.room.join_rules", json!({"join_rule": rule}))])).unwrap_err();
            assert!(open.contains(&format!("`{rule}`")), "{open}");
        }
        let readable =
            dm(vec![state("m.room.history_visibility", json!({"history_visibility": "world_readable"}))]);
        assert!(verdict(readable).unwrap_err().contains("history"));
        let encrypted = dm(vec![state("m.room.encryption", json!({"algorithm": "m.megolm.v1.aes-sha2"}))]);
        assert_eq!(verdict(encrypted), Err(ENCRYPTION_NOT_BRIDGED.to_owned()));
        assert_eq!(
            verdict(dm(vec![state("m.room.encryption", json!({}))])),
            Err(ENCRYPTION_NOT_BRIDGED.to_owned())
        );
    }

    #[test]
    fn a_tombstone_names_the_successor_and_odd_events_are_skipped() {
        let upgraded = facts(dm(vec![
            state("m.room.tombstone", json!({"body": "upgraded", "replacement_room": "!new:hs"})),
            json!({"type": "m.room.member", "content": "not an object"}),
            json!({"no": "type"}),
        ]));
        assert_eq!(upgraded.successor.as_ref().map(|r| r.as_str()), Some("!new:hs"));
        assert_eq!(upgraded.memberships.len(), 2);
        let bad = facts(vec![state("m.room.tombstone", json!({"replacement_room": "not a room id"}))]);
        assert_eq!(bad.successor, None);
    }
}
