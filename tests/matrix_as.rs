//! The Matrix connector against a real Synapse: the application-service routes served by the
//! test on 127.0.0.1, the homeserver calling them, and real users on the client-server API.
//!
//! Each test starts its own homeserver (tests/support/synapse.rs) with a fresh registration and
//! an in-memory [`TransactionSink`] that dedups by (scope, txn id) the way the service's durable
//! sink must. What a user would notice is asserted: the ghost exists with its name, the message
//! arrives once, a retried send shows once in the room.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/matrix_bridge.rs"]
mod matrix_bridge;
#[path = "support/synapse.rs"]
mod synapse;

use dm3_bridge_connector::{
    Attachment, Connector as _, ConnectorError, Content, ConversationId, Delete, Edit, EventKind,
    IdempotencyKey, InboundEvent, Message, MimeType, NetworkMessageId, Outbound, Reaction, ReactionKey,
    ReadReceipt, RemoteIdentity, Text, Unsupported, deliver,
};
use dm3_bridge_matrix::client::Attempt::{First, Retry};
use dm3_bridge_matrix::inbound::{Converted, convert};
use dm3_bridge_matrix::{Appservice, Registration, RoomEncryption};
use matrix_bridge::Bridge;
use ruma::events::room::message::RoomMessageEventContent;
use ruma::events::{AnyMessageLikeEvent, AnyTimelineEvent, MessageLikeEvent};
use ruma::{OwnedTransactionId, RoomId, ServerName};
use serde_json::{Value, json};
use synapse::SERVER_NAME;
use url::Url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn homeserver_pings_the_bridge_and_a_wrong_token_is_forbidden() {
    let bridge = Bridge::start().await;
    let round_trip = bridge.client.ping(Some(OwnedTransactionId::from("ping-1"))).await;
    assert!(round_trip.is_ok(), "the homeserver could not ping the bridge: {round_trip:?}");

    let body = json!({"events": []});
    let (status, answer) = bridge.put_transaction("1", &body, "not-the-hs-token").await;
    assert_eq!((status, answer["errcode"].as_str()), (403, Some("M_FORBIDDEN")));
    assert!(bridge.sink.delivered.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invited_ghost_is_registered_and_the_users_message_reaches_the_sink() {
    let bridge = Bridge::start().await;
    let (bob, room) = bridge.dm_with_alice().await;
    let ghost = bridge.ghost("alice.eth");
    assert_eq!(ghost.as_str(), "@_dm3_alice.eth:localhost");
    assert_eq!(
        bridge.names.asked.lock().unwrap().as_slice(),
        ["alice.eth"],
        "the homeserver asked for the ghost"
    );

    // The ghost exists, under its DM3 name.
    let path = format!("/_matrix/client/v3/profile/{}/displayname", synapse::encode(ghost.as_str()));
    let profile = bob.call(reqwest::Method::GET, &path, None).await.unwrap();
    assert_eq!(profile["displayname"], "alice.eth");

    let event_id = bob.send_text(room.as_str(), "m1", "hello alice").await.unwrap();
    bridge
        .wait_for("bob's message", |events| events.iter().any(|(_, e)| e["event_id"] == event_id.as_str()))
        .await;

    // The event in the transaction is the one bob sent, readable with ruma.
    let delivered = bridge.sink.delivered.lock().unwrap().clone();
    let raw =
        delivered.iter().flat_map(|t| t.events.iter()).find(|e| e.json().get().contains(&event_id)).unwrap();
    let AnyTimelineEvent::MessageLike(AnyMessageLikeEvent::RoomMessage(MessageLikeEvent::Original(message))) =
        raw.deserialize().unwrap()
    else {
        panic!("not a room message: {}", raw.json().get());
    };
    assert_eq!(message.sender.as_str(), bob.user_id);
    assert_eq!(message.room_id, room);
    assert_eq!(message.content.body(), "hello alice");
    let messages = bridge.sink.events().iter().filter(|(_, e)| e["event_id"] == event_id.as_str()).count();
    assert_eq!(messages, 1, "delivered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_transaction_is_not_delivered_twice() {
    let bridge = Bridge::start().await;
    let (bob, room) = bridge.dm_with_alice().await;
    let event_id = bob.send_text(room.as_str(), "m1", "only once").await.unwrap();
    bridge
        .wait_for("bob's message", |events| events.iter().any(|(_, e)| e["event_id"] == event_id.as_str()))
        .await;

    // The homeserver retries a transaction it got no answer for: same id, same content.
    let (txn_id, event) =
        bridge.sink.events().into_iter().find(|(_, e)| e["event_id"] == event_id.as_str()).unwrap();
    let body = json!({"events": [event]});
    let token = bridge.registration.hs_token().expose().to_owned();
    let before = bridge.sink.delivered.lock().unwrap().len();
    let (status, answer) = bridge.put_transaction(&txn_id, &body, &token).await;
    assert_eq!((status, answer), (200, json!({})), "a replay is acknowledged");
    assert_eq!(bridge.sink.delivered.lock().unwrap().len(), before, "and not delivered again");
    assert_eq!(*bridge.sink.replays.lock().unwrap(), 1);

    // A regenerated registration restarts the homeserver's numbering: the same txn id under the
    // new registration is new traffic, not a replay.
    let server_name = <&ServerName>::try_from(SERVER_NAME).unwrap();
    let regenerated =
        Registration::builder("dm3-test", Url::parse(&bridge.as_url).unwrap(), server_name).build().unwrap();
    let router =
        Appservice::new(&regenerated, bridge.client.clone(), bridge.sink.clone(), bridge.names.clone())
            .router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/_matrix/app/v1/transactions/{txn_id}",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    let response = reqwest::Client::new()
        .put(url)
        .bearer_auth(regenerated.hs_token().expose())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(bridge.sink.delivered.lock().unwrap().len(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghost_send_retried_with_the_same_txn_id_shows_once() {
    let bridge = Bridge::start().await;
    let (bob, room) = bridge.dm_with_alice().await;
    let ghost = bridge.ghost("alice.eth");

    // The engine derives the txn id from the DM3 message hash and keeps the DM3 time.
    let txn = OwnedTransactionId::from("dm3-0x5f3a9c");
    let sent_at: u64 = 1_700_000_000_000;
    let content = RoomMessageEventContent::text_plain("hi bob, from DM3");
    let first =
        bridge.client.send_message(&ghost, &room, &txn, Some(sent_at), &content, First).await.unwrap();
    let second =
        bridge.client.send_message(&ghost, &room, &txn, Some(sent_at), &content, First).await.unwrap();
    assert_eq!(first, second, "the homeserver recognised the retry");

    let timeline = bob.messages(room.as_str()).await.unwrap();
    let from_ghost: Vec<&Value> =
        timeline.iter().filter(|e| e["type"] == "m.room.message" && e["sender"] == ghost.as_str()).collect();
    assert_eq!(from_ghost.len(), 1, "one message in the room: {timeline:#?}");
    assert_eq!(from_ghost[0]["content"]["body"], "hi bob, from DM3");
    assert_eq!(from_ghost[0]["event_id"], first.as_str());
    assert_eq!(from_ghost[0]["origin_server_ts"], sent_at, "?ts= kept the original time");
}

/// Synapse keeps an appservice's txn ids in memory: after its restart the same PUT posts again.
/// A retry (`Attempt::Retry`) finds its earlier event instead, and one that never reached the
/// homeserver is posted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_the_homeserver_restarted_finds_its_earlier_event() {
    let mut bridge = Bridge::start().await;
    let (bob, room) = bridge.dm_with_alice().await;
    let ghost = bridge.ghost("alice.eth");
    let same = RoomMessageEventContent::text_plain("the same words");
    let (sent, lost, forgotten) = (
        OwnedTransactionId::from("dm3-0xa1"),
        OwnedTransactionId::from("dm3-0xa2"),
        OwnedTransactionId::from("dm3-0xa3"),
    );
    let first = bridge.client.send_message(&ghost, &room, &sent, None, &same, First).await.unwrap();
    bridge.synapse.kill().unwrap();
    bridge.synapse.start_again().await.unwrap();

    let retried = bridge.client.send_message(&ghost, &room, &sent, None, &same, Retry).await.unwrap();
    assert_eq!(retried, first, "the retry found the event its first attempt posted");
    // Same words, another send: not taken for the earlier one.
    let never_sent = bridge.client.send_message(&ghost, &room, &lost, None, &same, Retry).await.unwrap();
    assert_ne!(never_sent, first, "a retry whose first attempt never arrived is posted");
    // Why the look-back exists: the restarted homeserver no longer knows the first txn id.
    let posted_again = bridge.client.send_message(&ghost, &room, &sent, None, &same, First).await.unwrap();
    assert_ne!(posted_again, first, "Synapse remembered an appservice txn id across its restart");
    let again = bridge.client.send_message(&ghost, &room, &forgotten, None, &same, First).await.unwrap();
    assert_eq!(
        bridge.client.send_message(&ghost, &room, &forgotten, None, &same, Retry).await.unwrap(),
        again
    );

    let timeline = bob.messages(room.as_str()).await.unwrap();
    let ids: Vec<&str> = timeline
        .iter()
        .filter(|e| e["type"] == "m.room.message" && e["sender"] == ghost.as_str())
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 4, "first, never_sent, posted_again, again: {timeline:#?}");
    for id in [&first, &never_sent, &posted_again, &again] {
        assert!(ids.contains(&id.as_str()), "{id} is not in the room");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_rooms_are_detected() {
    let bridge = Bridge::start().await;
    let (bob, plain_room) = bridge.dm_with_alice().await;
    let ghost = bridge.ghost("alice.eth");
    assert_eq!(
        bridge.client.room_encryption(&ghost, &plain_room).await.unwrap(),
        RoomEncryption::Unencrypted
    );

    let encrypted = bob
        .create_room(json!({
            "invite": [ghost.as_str()],
            "initial_state": [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
        }))
        .await
        .unwrap();
    let encrypted = RoomId::parse(&encrypted).unwrap();
    bridge.client.join(&ghost, &encrypted).await.unwrap();
    let state = bridge.client.room_encryption(&ghost, &encrypted).await.unwrap();
    assert_eq!(state, RoomEncryption::Encrypted { algorithm: "m.megolm.v1.aes-sha2".to_owned() });
    assert!(!state.is_bridgeable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neutral_events_reach_the_matrix_user_with_their_relations() {
    let bridge = Bridge::start().await;
    let (bob, room) = bridge.dm_with_alice().await;
    let ghost = bridge.ghost("alice.eth");
    let question = bob.send_text(room.as_str(), "q1", "coffee?").await.unwrap();
    let connector = bridge.connector().with_max_media_bytes(4);
    connector.start().await.expect("start pings the homeserver through the bridge");

    let outbound = |key: &str, payload: EventKind| Outbound {
        conversation: ConversationId::new(room.as_str()).unwrap(),
        sender: RemoteIdentity::new("alice.eth").unwrap(),
        idempotency_key: IdempotencyKey::new(key).unwrap(),
        timestamp_ms: Some(1_700_000_000_000),
        retry: false,
        payload,
    };
    let question_id = NetworkMessageId::new(question.as_str()).unwrap();
    let reply = Message::new(Content::Text(Text::formatted("**yes**", "<b>yes</b>")))
        .replying_to(question_id.clone());
    let reply_id =
        deliver(&connector, &outbound("k-reply", EventKind::Message(reply))).await.unwrap().unwrap();
    let edit = Edit { target: reply_id.clone(), text: Text::plain("yes, now") };
    let edit_id = deliver(&connector, &outbound("k-edit", EventKind::Edit(edit))).await.unwrap().unwrap();
    let reaction = Reaction { target: question_id.clone(), key: ReactionKey::new("☕").unwrap() };
    let reaction_id =
        deliver(&connector, &outbound("k-react", EventKind::Reaction(reaction))).await.unwrap().unwrap();
    let delete = Delete { target: reaction_id.clone(), reason: None };
    assert_eq!(deliver(&connector, &outbound("k-delete", EventKind::Delete(delete))).await.unwrap(), None);
    let receipt = ReadReceipt { up_to: question_id.clone() };
    deliver(&connector, &outbound("k-read", EventKind::ReadReceipt(receipt))).await.unwrap();
    let file = Attachment::inline("a.txt", MimeType::new("text/plain").unwrap(), b"12345".to_vec()).unwrap();
    let attachment = Message::new(Content::Attachment { attachment: file, caption: None });
    assert_eq!(
        deliver(&connector, &outbound("k-file", EventKind::Message(attachment))).await,
        Err(ConnectorError::Unsupported(Unsupported::AttachmentTooLarge { size: 5, max: 4 })),
        "a file over the limit: an explicit refusal, not silence"
    );

    // What bob's client shows.
    let timeline = bob.messages(room.as_str()).await.unwrap();
    let by_id =
        |id: &NetworkMessageId| timeline.iter().find(|e| e["event_id"] == id.as_str()).cloned().unwrap();
    let reply = by_id(&reply_id);
    assert_eq!(reply["sender"], ghost.as_str());
    assert_eq!(reply["content"]["formatted_body"], "<b>yes</b>");
    assert_eq!(reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"], question.as_str());
    let edit = by_id(&edit_id);
    assert_eq!(
        edit["content"]["m.relates_to"],
        json!({"rel_type": "m.replace", "event_id": reply_id.as_str()})
    );
    assert_eq!(edit["content"]["m.new_content"]["body"], "yes, now");
    let reaction = by_id(&reaction_id);
    assert_eq!(reaction["content"], json!({}), "the reaction was redacted: {reaction}");
    let sync = bob.call(reqwest::Method::GET, "/_matrix/client/v3/sync?timeout=0", None).await.unwrap();
    let ephemeral = &sync["rooms"]["join"][room.as_str()]["ephemeral"]["events"];
    let read = ephemeral.as_array().unwrap().iter().find(|e| e["type"] == "m.receipt").unwrap();
    assert!(read["content"][question.as_str()]["m.read"][ghost.as_str()].is_object(), "{read}");

    // Inbound: bob's message converts to a neutral event; the ghost's own sends are echoes.
    bridge
        .wait_for("the ghost's echo", |events| events.iter().any(|(_, e)| e["event_id"] == reply_id.as_str()))
        .await;
    let delivered = bridge.sink.delivered.lock().unwrap().clone();
    let converted: Vec<Converted> = delivered
        .iter()
        .flat_map(|t| t.events.iter())
        .map(|e| convert(e, bridge.registration.ghosts()))
        .collect();
    let texts: Vec<&Message> = converted
        .iter()
        .filter_map(|c| match c {
            Converted::Event(InboundEvent { kind: EventKind::Message(m), .. }) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        [&Message::new(Content::Text(Text::plain("coffee?")))],
        "only bob's message is inbound"
    );
}
