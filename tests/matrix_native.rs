//! Bridge payloads and the Matrix connector against a real Synapse: native content goes into the
//! room exactly as given (with the relations the bridge adds), and a Matrix user's message comes
//! in with its content as received, for the engine to attach to the DM3 message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/matrix_bridge.rs"]
mod matrix_bridge;
#[path = "support/synapse.rs"]
mod synapse;

use dm3_bridge_connector::{
    ConversationId, EventKind, IdempotencyKey, InboundEvent, NativeContent, NativeMessage, NetworkMessageId,
    Outbound, RemoteIdentity, deliver,
};
use dm3_bridge_matrix::client::TXN_KEY;
use dm3_bridge_matrix::inbound::{Converted, convert};
use matrix_bridge::Bridge;
use serde_json::{Value, json};

fn native(content: &Value) -> NativeMessage {
    NativeMessage::new(NativeContent::new("m.room.message", content.as_object().unwrap().clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_content_reaches_the_room_verbatim_and_inbound_content_is_kept() {
    let bridge = Bridge::start().await;
    let (bob, room) = bridge.dm_with_alice().await;
    let ghost = bridge.ghost("alice.eth");
    let question = bob.send_text(room.as_str(), "q1", "coffee at 5?").await.unwrap();
    let connector = bridge.connector();
    let outbound = |key: &str, payload: NativeMessage| Outbound {
        conversation: ConversationId::new(room.as_str()).unwrap(),
        sender: RemoteIdentity::new("alice.eth").unwrap(),
        idempotency_key: IdempotencyKey::new(key).unwrap(),
        timestamp_ms: Some(1_700_000_000_000),
        retry: false,
        payload: EventKind::Native(Box::new(payload)),
    };
    let content = json!({
        "msgtype": "m.text",
        "body": "see you at 5, @bob",
        "format": "org.matrix.custom.html",
        "formatted_body": "see you at <b>5</b>, <a href=\"https://matrix.to/#/@bob:localhost\">bob</a>",
        "m.mentions": {"user_ids": ["@bob:localhost"]},
    });
    let question_id = NetworkMessageId::new(question.as_str()).unwrap();
    let reply = NativeMessage { reply_to: Some(question_id), ..native(&content) };
    let reply_id = deliver(&connector, &outbound("n-reply", reply)).await.unwrap().unwrap();
    let edited = json!({"msgtype": "m.notice", "body": "see you at 6"});
    let edit = NativeMessage { replaces: Some(reply_id.clone()), ..native(&edited) };
    let edit_id = deliver(&connector, &outbound("n-edit", edit)).await.unwrap().unwrap();

    let timeline = bob.messages(room.as_str()).await.unwrap();
    let by_id =
        |id: &NetworkMessageId| timeline.iter().find(|e| e["event_id"] == id.as_str()).cloned().unwrap();
    let reply = by_id(&reply_id);
    assert_eq!(reply["sender"], ghost.as_str());
    assert_eq!(reply["type"], "m.room.message");
    let mut expected = content.clone();
    expected["m.relates_to"] = json!({"m.in_reply_to": {"event_id": question.as_str()}});
    expected[TXN_KEY] = json!("n-reply");
    assert_eq!(reply["content"], expected, "the payload verbatim, the reply and txn id added by the bridge");
    assert_eq!(reply["origin_server_ts"], 1_700_000_000_000u64);
    let edit = by_id(&edit_id);
    let mut expected = edited.clone();
    expected["m.new_content"] = edited.clone();
    expected["m.relates_to"] = json!({"rel_type": "m.replace", "event_id": reply_id.as_str()});
    expected[TXN_KEY] = json!("n-edit");
    assert_eq!(edit["content"], expected);

    // Bob's formatted reply comes in with its content exactly as his client sent it.
    let bobs = json!({
        "msgtype": "m.text", "body": "sure", "format": "org.matrix.custom.html",
        "formatted_body": "<i>sure</i>", "com.example.custom": {"kept": [1, 2]},
        "m.relates_to": {"m.in_reply_to": {"event_id": reply_id.as_str()}},
    });
    let path = format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.message/b2",
        url::form_urlencoded::byte_serialize(room.as_str().as_bytes()).collect::<String>()
    );
    let sent = bob.call(reqwest::Method::PUT, &path, Some(bobs.clone())).await.unwrap();
    let bobs_id = sent["event_id"].as_str().unwrap().to_owned();
    bridge
        .wait_for("bob's reply", |events| events.iter().any(|(_, e)| e["event_id"] == bobs_id.as_str()))
        .await;
    let delivered = bridge.sink.delivered.lock().unwrap().clone();
    let inbound = delivered
        .iter()
        .flat_map(|t| t.events.iter())
        .find_map(|e| match convert(e, bridge.registration.ghosts()) {
            Converted::Event(event @ InboundEvent { .. }) if event.network_event_id.as_str() == bobs_id => {
                Some(event)
            }
            _ => None,
        })
        .unwrap();
    let original = inbound.original.expect("the content as received");
    assert_eq!(original.kind, "m.room.message");
    assert_eq!(Value::Object(original.body), bobs);
}
