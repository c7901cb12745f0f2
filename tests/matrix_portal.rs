//! Portals against a real Synapse: the DM rooms between a Matrix user and a ghost, opened from
//! the DM3 side or requested by the Matrix user's invite.
//!
//! The invite travels the whole way a real one does: a real user invites the ghost, Synapse
//! pushes the transaction to the routes, which hand it to an in-memory engine queue as a batch
//! holding a `PortalRequest` (`dm3_bridge_matrix::batch`), and the connector answers it. What the user
//! sees is asserted: who is in the room, the notices, the messages and receipts that arrive.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/matrix_bridge.rs"]
mod matrix_bridge;
#[path = "support/synapse.rs"]
mod synapse;

use dm3_bridge_connector::{
    Connector as _, ConnectorError, Content, ConversationId, EventKind, IdempotencyKey, Inbound,
    InboundEvent, Message, NetworkMessageId, NetworkUserId, Outbound, PortalRequest, ReadReceipt,
    RemoteIdentity, Text, deliver,
};
use dm3_bridge_matrix::encryption::ENCRYPTION_NOT_BRIDGED;
use dm3_bridge_matrix::portal::GROUP_NOT_BRIDGED;
use matrix_bridge::Bridge;
use reqwest::Method;
use serde_json::{Value, json};
use synapse::{MatrixUser, encode};

async fn joined_members(user: &MatrixUser, room: &str) -> Vec<String> {
    let path = format!("/_matrix/client/v3/rooms/{}/joined_members", encode(room));
    let answer = user.call(Method::GET, &path, None).await.unwrap();
    let mut members: Vec<String> = answer["joined"].as_object().unwrap().keys().cloned().collect();
    members.sort();
    members
}

/// Waits for the portal request of `room` in the engine.
async fn portal_request(bridge: &Bridge, room: &str) -> PortalRequest {
    let item = bridge
        .wait_for_item(
            "the invite of the ghost",
            |i| matches!(i, Inbound::PortalRequest(r) if r.conversation.as_str() == room),
        )
        .await;
    let Inbound::PortalRequest(request) = item else { unreachable!() };
    request
}

fn notices_from(timeline: &[Value], sender: &str) -> Vec<String> {
    timeline
        .iter()
        .filter(|e| e["sender"] == sender && e["content"]["msgtype"] == "m.notice")
        .map(|e| e["content"]["body"].as_str().unwrap().to_owned())
        .collect()
}

fn membership_of(timeline: &[Value], user: &str) -> Option<String> {
    timeline
        .iter()
        .rev()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == user)
        .map(|e| e["content"]["membership"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_portal_creates_a_direct_chat_the_user_is_invited_to() {
    let bridge = Bridge::start().await;
    let bob = bridge.synapse.register_user("bob").await.unwrap();
    let connector = bridge.connector();
    let portals = connector.portals().expect("the Matrix connector opens portals");
    let carol = RemoteIdentity::new("carol.eth").unwrap();
    let room = portals.open_portal(&NetworkUserId::new(bob.user_id.as_str()).unwrap(), &carol).await.unwrap();
    let ghost = bridge.ghost("carol.eth");

    // Bob is invited, by the ghost, to a direct chat.
    assert_eq!(bob.invited_rooms().await.unwrap(), [room.as_str()]);
    let sync = bob.call(Method::GET, "/_matrix/client/v3/sync?timeout=0", None).await.unwrap();
    let invite_state = sync["rooms"]["invite"][room.as_str()]["invite_state"]["events"].as_array().unwrap();
    let invite = invite_state
        .iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == bob.user_id.as_str())
        .unwrap();
    assert_eq!(
        (invite["sender"].as_str(), &invite["content"]["is_direct"]),
        (Some(ghost.as_str()), &json!(true))
    );

    bob.join(room.as_str()).await.unwrap();
    let mut expected = vec![bob.user_id.clone(), ghost.to_string()];
    expected.sort();
    assert_eq!(joined_members(&bob, room.as_str()).await, expected);
    let path = format!("/_matrix/client/v3/profile/{}/displayname", encode(ghost.as_str()));
    assert_eq!(bob.call(Method::GET, &path, None).await.unwrap()["displayname"], "carol.eth");
    let path = format!("/_matrix/client/v3/rooms/{}/state/m.room.join_rules/", encode(room.as_str()));
    assert_eq!(bob.call(Method::GET, &path, None).await.unwrap()["join_rule"], "invite", "a private room");

    // The portal carries messages from the ghost.
    let hello = Outbound {
        conversation: room.clone(),
        sender: carol.clone(),
        idempotency_key: IdempotencyKey::new("first-message").unwrap(),
        timestamp_ms: None,
        retry: false,
        payload: EventKind::Message(Message::new(Content::Text(Text::plain("hi bob")))),
    };
    let sent = deliver(&connector, &hello).await.unwrap().unwrap();
    let timeline = bob.messages(room.as_str()).await.unwrap();
    let message = timeline.iter().find(|e| e["event_id"] == sent.as_str()).unwrap();
    assert_eq!(
        (message["sender"].as_str(), message["content"]["body"].as_str()),
        (Some(ghost.as_str()), Some("hi bob"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_invite_becomes_a_portal_request_and_join_portal_joins() {
    let bridge = Bridge::start_with_engine().await;
    let bob = bridge.synapse.register_user("bob").await.unwrap();
    let ghost = bridge.ghost("alice.eth");
    let room = bob
        .create_room(json!({"is_direct": true, "preset": "trusted_private_chat", "invite": [ghost.as_str()]}))
        .await
        .unwrap();

    let request = portal_request(&bridge, &room).await;
    assert_eq!(request.requester.as_str(), bob.user_id);
    assert_eq!(request.remote.as_str(), "alice.eth");
    let connector = bridge.connector();
    connector.portals().unwrap().join_portal(&request).await.unwrap();
    let mut expected = vec![bob.user_id.clone(), ghost.to_string()];
    expected.sort();
    assert_eq!(joined_members(&bob, &room).await, expected);

    // Bob's message and his read receipt of the ghost's answer reach the engine.
    let question = bob.send_text(&room, "q1", "are you there?").await.unwrap();
    let item = bridge
        .wait_for_item(
            "bob's message",
            |i| matches!(i, Inbound::Event(e) if e.network_event_id.as_str() == question),
        )
        .await;
    let Inbound::Event(InboundEvent { sender, kind, .. }) = item else { unreachable!() };
    assert_eq!(sender.as_str(), bob.user_id);
    assert_eq!(kind, EventKind::Message(Message::new(Content::Text(Text::plain("are you there?")))));

    let answer = Outbound {
        conversation: ConversationId::new(room.as_str()).unwrap(),
        sender: request.remote.clone(),
        idempotency_key: IdempotencyKey::new("answer").unwrap(),
        timestamp_ms: None,
        retry: false,
        payload: EventKind::Message(Message::new(Content::Text(Text::plain("yes")))),
    };
    let answer_id = deliver(&connector, &answer).await.unwrap().unwrap();
    let path =
        format!("/_matrix/client/v3/rooms/{}/receipt/m.read/{}", encode(&room), encode(answer_id.as_str()));
    bob.call(Method::POST, &path, Some(json!({}))).await.unwrap();
    let receipt = bridge
        .wait_for_item(
            "bob's read receipt",
            |i| matches!(i, Inbound::Event(e) if matches!(e.kind, EventKind::ReadReceipt(_))),
        )
        .await;
    let Inbound::Event(receipt) = receipt else { unreachable!() };
    assert_eq!(receipt.sender.as_str(), bob.user_id);
    assert_eq!(receipt.kind, EventKind::ReadReceipt(ReadReceipt { up_to: answer_id.clone() }));
    // The ghost's own echo is not inbound.
    assert!(!bridge.engine.items().iter().any(
        |i| matches!(i, Inbound::Event(e) if e.network_event_id == NetworkMessageId::new(answer_id.as_str()).unwrap())
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_room_gets_a_notice_and_a_permanent_error() {
    let bridge = Bridge::start_with_engine().await;
    let bob = bridge.synapse.register_user("bob").await.unwrap();
    let ghost = bridge.ghost("alice.eth");
    let room = bob
        .create_room(json!({
            "is_direct": true, "preset": "trusted_private_chat", "invite": [ghost.as_str()],
            "initial_state": [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
        }))
        .await
        .unwrap();
    let request = portal_request(&bridge, &room).await;
    let error = bridge.connector().portals().unwrap().join_portal(&request).await.unwrap_err();
    assert_eq!(error, ConnectorError::Permanent(ENCRYPTION_NOT_BRIDGED.to_owned()));

    let timeline = bob.messages(&room).await.unwrap();
    assert_eq!(notices_from(&timeline, ghost.as_str()), [ENCRYPTION_NOT_BRIDGED], "{timeline:#?}");
    assert_eq!(membership_of(&timeline, ghost.as_str()).as_deref(), Some("leave"), "the ghost left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_room_is_told_it_is_not_bridged_and_a_refusal_shows_its_reason() {
    let bridge = Bridge::start_with_engine().await;
    let bob = bridge.synapse.register_user("bob").await.unwrap();
    let carol = bridge.synapse.register_user("carol").await.unwrap();
    let ghost = bridge.ghost("alice.eth");

    // A group room: no is_direct, a third member. The invite still asks for a portal.
    let group = bob.create_room(json!({"invite": [carol.user_id.as_str(), ghost.as_str()]})).await.unwrap();
    carol.join(&group).await.unwrap();
    let request = portal_request(&bridge, &group).await;
    let connector = bridge.connector();
    let error = connector.portals().unwrap().join_portal(&request).await.unwrap_err();
    let reason = format!("{} joined or was invited, and {GROUP_NOT_BRIDGED}", carol.user_id);
    assert_eq!(error, ConnectorError::Permanent(reason.clone()));
    let timeline = bob.messages(&group).await.unwrap();
    assert_eq!(notices_from(&timeline, ghost.as_str()), [reason]);
    assert_eq!(membership_of(&timeline, ghost.as_str()).as_deref(), Some("leave"));

    // A direct chat the engine refuses (the user policy, say): the reason is shown, the ghost leaves.
    let dm = bob.create_room(json!({"is_direct": true, "invite": [ghost.as_str()]})).await.unwrap();
    let request = portal_request(&bridge, &dm).await;
    let reason = "this bridge only serves users of example.org";
    connector.portals().unwrap().refuse_portal(&request, reason).await.unwrap();
    let timeline = bob.messages(&dm).await.unwrap();
    assert_eq!(notices_from(&timeline, ghost.as_str()), [reason]);
    let leave = timeline
        .iter()
        .rev()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == ghost.as_str())
        .unwrap();
    assert_eq!(
        (leave["content"]["membership"].as_str(), leave["content"]["reason"].as_str()),
        (Some("leave"), Some(reason))
    );
}
