//! A transaction from the homeserver into the engine's inbound batch.
//!
//! The transaction is what the bridge acknowledges, so it is also what the engine stores: one
//! [`InboundBatch`] per transaction, keyed `<registration scope>.<txnId>` ([`batch_key`]) so a
//! retried transaction is recognised and a regenerated registration (which restarts the
//! homeserver's numbering) is not mistaken for a replay. Synapse on SQLite also restarts its
//! numbering whenever it restarts (element-hq/synapse#14556); the key alone cannot tell that
//! apart, so the engine's sink remembers a batch under its key and a digest of its items.
//! Every engine [`InboundSink`] is therefore a [`TransactionSink`] as it is: the routes hand
//! it the transaction, and it stores [`Transaction::batch`].

//! What a transaction holds, and what each part becomes ([`inbound_items`]):
//! - a Matrix user's command to the bridge (`!dm3 block`) → a
//!   [`CommandRequest`](dm3_bridge_connector::CommandRequest), never a
//!   message ([`crate::command`]);
//! - timeline events → [`crate::inbound::convert`]: an event, an unbridgeable event, or nothing;
//! - an invite of one of our ghosts by a Matrix user → a [`PortalRequest`]. Every such invite
//!   counts, `is_direct` or not: clients set that flag inconsistently, and a group room is better
//!   told that it is not bridged (`join_portal` looks at its members) than ignored;
//! - a change of what makes a room a direct chat (a member event, the join rule, the history
//!   visibility, encryption, a tombstone) made by anyone but our ghosts → a
//!   [`ConversationChange`]: the engine asks the connector to look at the room again if it is a
//!   portal, and ignores it otherwise (docs/engine.md, "Portal lifecycle"). Our ghosts' own
//!   joins and leaves follow from what the engine did, so they change nothing;
//! - `m.receipt` ephemeral events → one read receipt per user and event under `m.read`, except
//!   our ghosts' own. `m.read.private` stays private. A receipt has no event id, so its id is
//!   derived from (room, user, event): stable across replays, unique per receipt.
//!
//! Timeline items come first, then receipts, so a receipt for a message of the same
//! transaction follows that message in the engine's per-conversation order.

use std::time::{SystemTime, UNIX_EPOCH};

use dm3_bridge_connector::{
    Accepted, ConversationChange, ConversationId, EventKind, IdError, IdempotencyKey, Inbound, InboundBatch,
    InboundEvent, InboundSink, NetworkMessageId, NetworkUserId, PortalRequest, ReadReceipt, Unbridgeable,
};
use ruma::api::appservice::event::push_events::v1::EphemeralData;
use ruma::events::receipt::ReceiptType;
use ruma::events::room::member::MembershipState;
use ruma::events::{AnyStateEvent, AnyTimelineEvent, StateEvent};
use ruma::serde::Raw;
use ruma::{EventId, RoomId, TransactionId, UserId};
use sha2::{Digest as _, Sha256};

use crate::command::{CommandPrefix, Recognized, recognize};
use crate::encryption::ENCRYPTION_OFF;
use crate::ghost::GhostNamespace;
use crate::inbound::{Converted, convert};
use crate::registration::RegistrationScope;
use crate::transaction::{Recorded, SinkError, Transaction, TransactionSink};

/// Longest transaction id written as it is into a batch key; longer ones are hashed.
const MAX_PLAIN_TXN_ID: usize = 128 - 32 - 1;

/// The batch key of a transaction: `<scope>.<txnId>`, with every byte of the txn id outside
/// `A-Z a-z 0-9 . _ -` written `~` and two hex digits, or `<scope>.~~<sha256>` when that is too
/// long. Both forms are injective (an escape is always `~` and a hex digit, never `~~`), so two
/// transactions never share a key.
pub fn batch_key(scope: &RegistrationScope, txn_id: &TransactionId) -> Result<IdempotencyKey, IdError> {
    let mut escaped = String::with_capacity(txn_id.as_str().len());
    for byte in txn_id.as_str().bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("~{byte:02x}"));
        }
    }
    if escaped.len() > MAX_PLAIN_TXN_ID {
        escaped = format!("~~{}", hex(&Sha256::digest(txn_id.as_str().as_bytes())));
    }
    IdempotencyKey::new(format!("{scope}.{escaped}"))
}

/// Everything in `transaction` the engine must see, in order.
pub fn inbound_items(transaction: &Transaction, ghosts: &GhostNamespace) -> Vec<Inbound> {
    let mut items = Vec::new();
    for raw in &transaction.events {
        if let Some(request) = portal_request(raw, ghosts) {
            items.push(Inbound::PortalRequest(request));
            continue;
        }
        if let Some(change) = conversation_change(raw, ghosts) {
            items.push(Inbound::ConversationChange(change));
            continue;
        }
        items.extend(message_item(raw, ghosts, &transaction.commands, transaction.decrypts));
    }
    for raw in &transaction.ephemeral {
        items.extend(read_receipts(raw, ghosts).into_iter().map(Inbound::Event));
    }
    items
}

/// What a room message means for the engine: a command, an event, a sealed envelope, an
/// encrypted event (when `decrypts`, else a refusal), a refusal, or nothing. Also what an
/// encrypted event turns out to be once opened ([`crate::encrypted_inbound`]).
pub(crate) fn message_item(
    raw: &Raw<AnyTimelineEvent>,
    ghosts: &GhostNamespace,
    commands: &CommandPrefix,
    decrypts: bool,
) -> Option<Inbound> {
    match recognize(raw, ghosts, commands) {
        Some(Recognized::Command(command)) => return Some(Inbound::Command(command)),
        Some(Recognized::Dropped) => return None,
        None => {}
    }
    match convert(raw, ghosts) {
        Converted::Event(event) => Some(Inbound::Event(event)),
        Converted::Sealed(sealed) => Some(Inbound::Sealed(sealed)),
        Converted::Encrypted(encrypted) if decrypts => Some(Inbound::Encrypted(encrypted)),
        Converted::Encrypted(encrypted) => Some(Inbound::Unbridgeable(Unbridgeable {
            conversation: encrypted.conversation,
            sender: encrypted.sender,
            network_event_id: encrypted.network_event_id,
            reason: ENCRYPTION_OFF.to_owned(),
        })),
        Converted::Ignored => None,
        Converted::Unbridgeable { event_id, room_id, sender, reason } => {
            let item = unbridgeable(&event_id, &room_id, &sender, reason);
            if item.is_none() {
                tracing::warn!(event_id, room_id, "unbridgeable event with unusable ids; dropped");
            }
            item.map(Inbound::Unbridgeable)
        }
    }
}

fn unbridgeable(event_id: &str, room_id: &str, sender: &str, reason: String) -> Option<Unbridgeable> {
    Some(Unbridgeable {
        conversation: ConversationId::new(room_id).ok()?,
        sender: NetworkUserId::new(sender).ok()?,
        network_event_id: NetworkMessageId::new(event_id).ok()?,
        reason,
    })
}

/// A Matrix user's invite of one of our ghosts, as a request to open a portal.
fn portal_request(raw: &Raw<AnyTimelineEvent>, ghosts: &GhostNamespace) -> Option<PortalRequest> {
    let Ok(AnyTimelineEvent::State(AnyStateEvent::RoomMember(StateEvent::Original(member)))) =
        raw.deserialize()
    else {
        return None;
    };
    if member.content.membership != MembershipState::Invite || ghosts.contains(&member.sender) {
        return None;
    }
    let remote = ghosts.identity(&member.state_key).ok()?;
    Some(PortalRequest {
        conversation: ConversationId::new(member.room_id.as_str()).ok()?,
        requester: NetworkUserId::new(member.sender.as_str()).ok()?,
        remote,
        timestamp_ms: member.origin_server_ts.get().into(),
        network_event_id: NetworkMessageId::new(member.event_id.as_str()).ok(),
    })
}

/// The state event types whose change can make a portal's room stop (or start again) being a
/// direct chat that only its two people read.
const PORTAL_STATE: [&str; 5] = [
    "m.room.member",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.encryption",
    "m.room.tombstone",
];

/// A state change that may decide whether the room can stay a portal.
fn conversation_change(raw: &Raw<AnyTimelineEvent>, ghosts: &GhostNamespace) -> Option<ConversationChange> {
    #[derive(serde::Deserialize)]
    struct StateHead {
        #[serde(rename = "type")]
        kind: String,
        state_key: Option<String>,
        sender: ruma::OwnedUserId,
        room_id: String,
        event_id: String,
    }
    let head = raw.deserialize_as_unchecked::<StateHead>().ok()?;
    let state_key = head.state_key?;
    if !PORTAL_STATE.contains(&head.kind.as_str()) || ghosts.contains(&head.sender) {
        return None;
    }
    let what = if state_key.is_empty() { head.kind } else { format!("{} of {state_key}", head.kind) };
    Some(ConversationChange {
        conversation: ConversationId::new(head.room_id).ok()?,
        network_event_id: NetworkMessageId::new(head.event_id).ok()?,
        what,
    })
}

/// The public read receipts of Matrix users in one ephemeral event.
fn read_receipts(raw: &Raw<EphemeralData>, ghosts: &GhostNamespace) -> Vec<InboundEvent> {
    let Ok(EphemeralData::Receipt(receipt)) = raw.deserialize() else {
        return Vec::new();
    };
    let room = &receipt.room_id;
    let mut out = Vec::new();
    for (event_id, receipts) in receipt.content.iter() {
        let Some(readers) = receipts.get(&ReceiptType::Read) else { continue };
        for (user, read) in readers {
            if ghosts.contains(user) {
                continue;
            }
            let timestamp_ms = read.ts.map_or_else(now_ms, |ts| ts.get().into());
            if let Some(event) = read_receipt(room, user, event_id, timestamp_ms) {
                out.push(event);
            }
        }
    }
    out
}

fn read_receipt(room: &RoomId, user: &UserId, event_id: &EventId, timestamp_ms: u64) -> Option<InboundEvent> {
    let mut hasher = Sha256::new();
    for part in [room.as_str(), user.as_str(), event_id.as_str()] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    Some(InboundEvent {
        conversation: ConversationId::new(room.as_str()).ok()?,
        sender: NetworkUserId::new(user.as_str()).ok()?,
        network_event_id: NetworkMessageId::new(format!("m.read.{}", hex(&hasher.finalize()))).ok()?,
        timestamp_ms,
        kind: EventKind::ReadReceipt(ReadReceipt { up_to: NetworkMessageId::new(event_id.as_str()).ok()? }),
        original: None,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Transaction {
    /// The transaction as the engine stores it: one batch under [`batch_key`], holding
    /// [`inbound_items`].
    pub fn batch(&self) -> Result<InboundBatch, IdError> {
        let key = batch_key(&self.scope, &self.txn_id)?;
        Ok(InboundBatch { network: self.network.clone(), key, items: inbound_items(self, &self.ghosts) })
    }
}

/// The engine's queue takes transactions directly: each is handed over as one batch, and
/// acknowledged only once the engine stored it.
impl<S: InboundSink + ?Sized + 'static> TransactionSink for S {
    async fn record(&self, transaction: Transaction) -> Result<Recorded, SinkError> {
        let batch = transaction.batch().map_err(|e| SinkError(e.to_string()))?;
        match self.accept(batch).await {
            Ok(Accepted::New) => Ok(Recorded::New),
            Ok(Accepted::Duplicate) => Ok(Recorded::AlreadySeen),
            Err(e) => Err(SinkError(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::{Arc, Mutex};

    use dm3_bridge_connector::{BoxFuture, Content, Message, NetworkId, SinkError as CoreSinkError, Text};
    use proptest::prelude::*;
    use ruma::{OwnedTransactionId, ServerName};
    use serde_json::{Value, json};

    use super::*;
    use crate::secret::HsToken;

    fn ghosts() -> GhostNamespace {
        GhostNamespace::dm3(<&ServerName>::try_from("localhost").unwrap())
    }

    fn scope() -> RegistrationScope {
        RegistrationScope::derive("dm3", &HsToken::new("hs"))
    }

    /// A transaction as Synapse 1.163 pushes it (fields and nesting copied from its output).
    fn transaction(events: Vec<Value>, ephemeral: Vec<Value>) -> Transaction {
        Transaction {
            network: NetworkId::new("matrix").unwrap(),
            ghosts: ghosts(),
            commands: CommandPrefix::default(),
            scope: scope(),
            txn_id: OwnedTransactionId::from("17"),
            events: events.iter().map(|e| Raw::new(e).unwrap().cast_unchecked()).collect(),
            ephemeral: ephemeral.iter().map(|e| Raw::new(e).unwrap().cast_unchecked()).collect(),
            decrypts: true,
        }
    }

    fn invite(sender: &str, invitee: &str, is_direct: Option<bool>) -> Value {
        let mut content = json!({"membership": "invite", "displayname": "alice.eth"});
        if let Some(direct) = is_direct {
            content["is_direct"] = json!(direct);
        }
        json!({
            "type": "m.room.member", "room_id": "!VwBAzhJtSrvhjPnmbJ", "sender": sender,
            "state_key": invitee, "content": content, "origin_server_ts": 1_754_000_000_000u64,
            "unsigned": {"age": 4, "invite_room_state": [
                {"type": "m.room.create", "state_key": "", "sender": sender, "content": {"room_version": "12"}},
                {"type": "m.room.join_rules", "state_key": "", "sender": sender, "content": {"join_rule": "invite"}},
            ]},
            "event_id": "$inv1", "user_id": sender,
        })
    }

    fn text(sender: &str, event_id: &str, body: &str) -> Value {
        json!({
            "type": "m.room.message", "room_id": "!VwBAzhJtSrvhjPnmbJ", "sender": sender,
            "content": {"msgtype": "m.text", "body": body}, "origin_server_ts": 1_754_000_000_100u64,
            "unsigned": {"age": 3}, "event_id": event_id, "user_id": sender,
        })
    }

    fn receipt(readers: Value) -> Value {
        json!({"type": "m.receipt", "room_id": "!VwBAzhJtSrvhjPnmbJ", "content": {"$msg1": readers}})
    }

    #[test]
    fn an_encrypted_event_is_carried_as_it_came_or_refused_when_encryption_is_off() {
        let encrypted = json!({
            "type": "m.room.encrypted", "room_id": "!VwBAzhJtSrvhjPnmbJ", "sender": "@bob:localhost",
            "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA", "session_id": "s"},
            "origin_server_ts": 1, "event_id": "$enc",
        });
        let on = transaction(vec![encrypted.clone()], vec![]).batch().unwrap();
        let [Inbound::Encrypted(carried)] = &on.items[..] else { panic!("{:?}", on.items) };
        assert_eq!(Value::Object(carried.event.clone()), encrypted);
        let off = Transaction { decrypts: false, ..transaction(vec![encrypted], vec![]) }.batch().unwrap();
        let [Inbound::Unbridgeable(refused)] = &off.items[..] else { panic!("{:?}", off.items) };
        assert_eq!((refused.network_event_id.as_str(), refused.reason.as_str()), ("$enc", ENCRYPTION_OFF));
    }

    #[test]
    fn invites_messages_and_receipts_become_items_in_order() {
        let t = transaction(
            vec![
                invite("@bob:localhost", "@_dm3_alice.eth:localhost", Some(true)),
                text("@bob:localhost", "$msg1", "hi alice"),
                text("@_dm3_alice.eth:localhost", "$echo", "hi bob"),
                json!({"type": "m.room.message", "room_id": "!VwBAzhJtSrvhjPnmbJ", "sender": "@bob:localhost",
                       "content": {"msgtype": "m.location", "body": "here", "geo_uri": "geo:1,2"},
                       "origin_server_ts": 1, "event_id": "$loc"}),
            ],
            vec![
                receipt(json!({
                    "m.read": {"@bob:localhost": {"ts": 1_754_000_000_200u64}, "@_dm3_alice.eth:localhost": {"ts": 1}},
                    "m.read.private": {"@carol:localhost": {"ts": 2}},
                })),
                json!({"type": "m.typing", "room_id": "!VwBAzhJtSrvhjPnmbJ", "content": {"user_ids": ["@bob:localhost"]}}),
                json!({"type": "m.presence", "sender": "@bob:localhost", "content": {"presence": "online"}}),
            ],
        );
        let items = inbound_items(&t, &ghosts());
        assert_eq!(items.len(), 4, "{items:#?}");
        let Inbound::PortalRequest(request) = &items[0] else { panic!("{:?}", items[0]) };
        assert_eq!(request.conversation.as_str(), "!VwBAzhJtSrvhjPnmbJ");
        assert_eq!(request.requester.as_str(), "@bob:localhost");
        assert_eq!(request.remote.as_str(), "alice.eth");
        assert_eq!(request.timestamp_ms, 1_754_000_000_000);
        let Inbound::Event(message) = &items[1] else { panic!("{:?}", items[1]) };
        assert_eq!(message.kind, EventKind::Message(Message::new(Content::Text(Text::plain("hi alice")))));
        let Inbound::Unbridgeable(location) = &items[2] else { panic!("{:?}", items[2]) };
        assert_eq!(location.network_event_id.as_str(), "$loc");
        assert!(location.reason.contains("m.location"));
        let Inbound::Event(read) = &items[3] else { panic!("{:?}", items[3]) };
        assert_eq!(read.sender.as_str(), "@bob:localhost");
        assert_eq!(read.timestamp_ms, 1_754_000_000_200);
        assert_eq!(
            read.kind,
            EventKind::ReadReceipt(ReadReceipt { up_to: NetworkMessageId::new("$msg1").unwrap() })
        );
        // The receipt's id is the same on a replay and differs per reader.
        assert_eq!(inbound_items(&t, &ghosts())[3], items[3]);
        let other = inbound_items(
            &transaction(vec![], vec![receipt(json!({"m.read": {"@dave:localhost": {"ts": 5}}}))]),
            &ghosts(),
        );
        assert_ne!(other[0].clone(), items[3]);
    }

    #[test]
    fn a_command_is_an_item_of_its_own_and_never_a_message() {
        let items = inbound_items(
            &transaction(
                vec![text("@bob:localhost", "$c", "!dm3 block"), text("@bob:localhost", "$m", "!dm3block")],
                vec![],
            ),
            &ghosts(),
        );
        assert_eq!(items.len(), 2, "{items:#?}");
        let Inbound::Command(command) = &items[0] else { panic!("{:?}", items[0]) };
        assert_eq!(command.network_event_id.as_str(), "$c");
        assert!(matches!(&items[1], Inbound::Event(e) if e.network_event_id.as_str() == "$m"));
    }

    #[test]
    fn every_ghost_invite_by_a_user_is_a_request_and_nothing_else_is() {
        let requests = |events: Vec<Value>| {
            inbound_items(&transaction(events, vec![]), &ghosts())
                .into_iter()
                .filter(|i| matches!(i, Inbound::PortalRequest(_)))
                .count()
        };
        assert_eq!(
            requests(vec![invite("@bob:localhost", "@_dm3_alice.eth:localhost", None)]),
            1,
            "no is_direct"
        );
        assert_eq!(
            requests(vec![invite("@bob:localhost", "@carol:localhost", Some(true))]),
            0,
            "not a ghost"
        );
        assert_eq!(
            requests(vec![invite("@_dm3_x.eth:localhost", "@_dm3_alice.eth:localhost", Some(true))]),
            0
        );
        assert_eq!(
            requests(vec![invite("@bob:localhost", "@_dm3_=zz:localhost", Some(true))]),
            0,
            "malformed"
        );
        let mut join = invite("@bob:localhost", "@_dm3_alice.eth:localhost", None);
        join["content"]["membership"] = json!("join");
        assert_eq!(requests(vec![join]), 0);
    }

    #[test]
    fn changes_of_members_and_room_rules_by_users_are_conversation_changes() {
        let changes = |events: Vec<Value>| -> Vec<String> {
            inbound_items(&transaction(events, vec![]), &ghosts())
                .into_iter()
                .filter_map(|i| match i {
                    Inbound::ConversationChange(change) => Some(change.what),
                    _ => None,
                })
                .collect()
        };
        let state = |kind: &str, sender: &str, state_key: &str, content: Value| {
            json!({"type": kind, "room_id": "!VwBAzhJtSrvhjPnmbJ", "sender": sender, "state_key": state_key,
                   "content": content, "origin_server_ts": 1, "event_id": format!("${kind}{state_key}")})
        };
        let bob = "@bob:localhost";
        let ghost = "@_dm3_alice.eth:localhost";
        assert_eq!(
            changes(vec![
                state("m.room.member", "@eve:localhost", "@eve:localhost", json!({"membership": "join"})),
                state("m.room.member", bob, "@eve:localhost", json!({"membership": "invite"})),
                state("m.room.member", bob, bob, json!({"membership": "leave"})),
                state("m.room.member", bob, ghost, json!({"membership": "ban"})),
                state("m.room.join_rules", bob, "", json!({"join_rule": "public"})),
                state("m.room.history_visibility", bob, "", json!({"history_visibility": "world_readable"})),
                state("m.room.encryption", bob, "", json!({"algorithm": "m.megolm.v1.aes-sha2"})),
                state("m.room.tombstone", bob, "", json!({"replacement_room": "!new:localhost"})),
            ]),
            [
                "m.room.member of @eve:localhost",
                "m.room.member of @eve:localhost",
                "m.room.member of @bob:localhost",
                "m.room.member of @_dm3_alice.eth:localhost",
                "m.room.join_rules",
                "m.room.history_visibility",
                "m.room.encryption",
                "m.room.tombstone",
            ]
        );
        // The ghost's own joins, other state, and messages are not.
        assert!(
            changes(vec![
                state("m.room.member", ghost, ghost, json!({"membership": "join"})),
                state("m.room.name", bob, "", json!({"name": "chat"})),
                state("m.room.power_levels", bob, "", json!({})),
                text(bob, "$m", "hi"),
            ])
            .is_empty()
        );
        // An invite of a ghost is a portal request, not a change.
        assert!(changes(vec![invite(bob, ghost, Some(true))]).is_empty());
    }

    #[test]
    fn batch_keys_are_scoped_escaped_and_bounded() {
        let scope = scope();
        let key = |txn: &str| batch_key(&scope, &OwnedTransactionId::from(txn)).unwrap().to_string();
        assert_eq!(key("17"), format!("{scope}.17"));
        assert_eq!(key("a/b c"), format!("{scope}.a~2fb~20c"));
        assert_ne!(key("a~2f"), key("a/"), "a literal tilde is escaped too");
        let long = key(&"x".repeat(500));
        assert!(long.len() <= 128 && long.starts_with(&format!("{scope}.~~")));
        let other = RegistrationScope::derive("dm3", &HsToken::new("regenerated"));
        assert_ne!(batch_key(&other, &OwnedTransactionId::from("17")).unwrap().to_string(), key("17"));
    }

    proptest! {
        #[test]
        fn batch_keys_are_valid_and_injective(a in "\\PC{1,120}", b in "\\PC{1,120}") {
            let scope = scope();
            let ka = batch_key(&scope, &OwnedTransactionId::from(a.as_str())).unwrap();
            let kb = batch_key(&scope, &OwnedTransactionId::from(b.as_str())).unwrap();
            prop_assert_eq!(ka == kb, a == b);
        }
    }

    /// An engine sink that remembers keys.
    #[derive(Default)]
    struct Engine {
        batches: Mutex<Vec<InboundBatch>>,
        fail: bool,
    }

    impl InboundSink for Engine {
        fn accept(&self, batch: InboundBatch) -> BoxFuture<'_, Result<Accepted, CoreSinkError>> {
            Box::pin(async move {
                if self.fail {
                    return Err(CoreSinkError("database down".to_owned()));
                }
                let mut batches = self.batches.lock().unwrap();
                if batches.iter().any(|b| b.key == batch.key) {
                    return Ok(Accepted::Duplicate);
                }
                batches.push(batch);
                Ok(Accepted::New)
            })
        }
    }

    #[tokio::test]
    async fn the_engine_gets_one_keyed_batch_and_its_answers_are_mapped() {
        let engine = Arc::new(Engine::default());
        let network = NetworkId::new("matrix").unwrap();
        let sink: Arc<dyn InboundSink> = engine.clone();
        let t = transaction(vec![invite("@bob:localhost", "@_dm3_alice.eth:localhost", Some(true))], vec![]);
        assert_eq!(sink.record(t.clone()).await.unwrap(), Recorded::New);
        assert_eq!(sink.record(t).await.unwrap(), Recorded::AlreadySeen);
        let batches = engine.batches.lock().unwrap().clone();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].network, network);
        assert_eq!(batches[0].key.to_string(), format!("{}.17", scope()));
        assert!(matches!(batches[0].items[..], [Inbound::PortalRequest(_)]));

        let down = Engine { fail: true, ..Engine::default() };
        let error = down.record(transaction(vec![], vec![])).await.unwrap_err();
        assert!(error.to_string().contains("database down"));
    }
}
