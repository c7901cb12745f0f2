//! Bridge payloads (native Bot API calls) from DM3 users: sent with the client's own
//! parameters, the chat, reply and sender's name added by the bridge, edits as `editMessage*`.

use dm3_bridge_connector::{
    ConnectorError, EventKind, NativeContent, NativeMessage, NetworkMessageId, deliver,
};
use serde_json::{Value, json};

use crate::support::{Harness, outbound};

fn native(method: &str, parameters: Value) -> NativeMessage {
    NativeMessage::new(NativeContent::new(method, parameters.as_object().unwrap().clone()))
}

fn event(message: NativeMessage) -> EventKind {
    EventKind::Native(Box::new(message))
}

#[tokio::test]
async fn a_payload_is_sent_with_its_own_parameters_and_the_bridges_additions() {
    let h = Harness::new().await;
    let (_, question) = h.api.user_text(42, "when?");
    let question_id = NetworkMessageId::new(format!("42:{question}")).unwrap();
    let payload = native(
        "sendMessage",
        json!({
            "text": "meeting moved to 5pm, agenda here",
            "entities": [
                {"type": "bold", "offset": 17, "length": 3},
                {"type": "text_link", "offset": 22, "length": 11, "url": "https://example.org/agenda"},
            ],
            "link_preview_options": {"is_disabled": true},
        }),
    );
    let reply = NativeMessage { reply_to: Some(question_id), ..payload };
    let id = deliver(&h.connector, &outbound(42, "alice.eth", "n1", event(reply))).await.unwrap().unwrap();

    let sent = h.api.params_of("sendMessage");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        Value::Object(sent[0].clone()),
        json!({
            "chat_id": 42,
            "text": "alice.eth: meeting moved to 5pm, agenda here",
            "entities": [
                {"type": "bold", "offset": 0, "length": 9},
                {"type": "bold", "offset": 28, "length": 3},
                {"type": "text_link", "offset": 33, "length": 11, "url": "https://example.org/agenda"},
            ],
            "link_preview_options": {"is_disabled": true},
            "reply_parameters": {"message_id": question, "allow_sending_without_reply": true},
        }),
        "the client's parameters verbatim, shifted behind the sender's name"
    );
    assert_eq!(id.as_str(), format!("42:{}", h.api.sent_to(42)[0].message_id));
    assert_eq!(h.state.route(id.as_str()).as_deref(), Some("42/alice.eth"), "replies to it find alice");

    // A retry is answered from the sent cache, not posted twice.
    let again = native("sendMessage", json!({"text": "meeting moved to 5pm, agenda here"}));
    deliver(&h.connector, &outbound(42, "alice.eth", "n1", event(again))).await.unwrap();
    assert_eq!(h.api.params_of("sendMessage").len(), 1);

    // An edit replaces the text with the payload's, through editMessageText.
    let edit = NativeMessage {
        replaces: Some(id.clone()),
        ..native(
            "sendMessage",
            json!({"text": "<i>moved to 6pm</i>", "parse_mode": "HTML", "protect_content": true}),
        )
    };
    let edit_id =
        deliver(&h.connector, &outbound(42, "alice.eth", "n2", event(edit))).await.unwrap().unwrap();
    assert_eq!(edit_id.as_str(), format!("{id}:edit-n2"));
    let edits = h.api.params_of("editMessageText");
    assert_eq!(
        Value::Object(edits[0].clone()),
        json!({
            "chat_id": 42,
            "message_id": h.api.sent_to(42)[0].message_id,
            "text": "<b>alice.eth</b>: <i>moved to 6pm</i>",
            "parse_mode": "HTML",
        })
    );
}

#[tokio::test]
async fn a_photo_by_url_keeps_its_caption_markup_and_other_calls_are_refused() {
    let h = Harness::new().await;
    let photo = native(
        "sendPhoto",
        json!({"photo": "https://example.org/sunset.jpg", "caption": "<i>sunset</i>", "parse_mode": "HTML", "has_spoiler": true}),
    );
    deliver(&h.connector, &outbound(42, "alice.eth", "p1", event(photo))).await.unwrap().unwrap();
    let sent = h.api.params_of("sendPhoto");
    assert_eq!(
        Value::Object(sent[0].clone()),
        json!({
            "chat_id": 42,
            "photo": "https://example.org/sunset.jpg",
            "caption": "<b>alice.eth</b>: <i>sunset</i>",
            "parse_mode": "HTML",
            "has_spoiler": true,
        })
    );

    let forward = native("forwardMessage", json!({"from_chat_id": 7, "message_id": 1}));
    let refused = deliver(&h.connector, &outbound(42, "alice.eth", "p2", event(forward))).await;
    assert!(matches!(refused, Err(ConnectorError::Permanent(r)) if r.contains("forwardMessage")));
    assert_eq!(h.api.sent_to(42).len(), 1, "nothing else was sent");
}

#[tokio::test]
async fn telegrams_refusal_reaches_the_engine_as_a_permanent_failure() {
    let h = Harness::new().await;
    let empty = native("sendPhoto", json!({"photo": "attach://nothing"}));
    let refused = deliver(&h.connector, &outbound(42, "alice.eth", "r1", event(empty))).await;
    assert!(matches!(refused, Err(ConnectorError::Permanent(_))), "{refused:?}");
}

#[tokio::test]
async fn a_users_message_comes_in_with_the_call_that_reproduces_it() {
    use dm3_bridge_connector::{Connector as _, Inbound};

    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    h.api.user_text(42, "/to bob.eth");
    let entities = json!([{"type": "bold", "offset": 6, "length": 5}, {"type": "text_link", "offset": 12, "length": 4, "url": "https://dm3.network/"}]);
    h.api.user_formatted(42, "hello world docs", entities.clone());
    let batches = h.sink.wait_for(2).await;
    let Inbound::Event(event) = &batches[1].items[0] else { panic!("{:?}", batches[1].items) };
    let original = event.original.as_ref().expect("the original call");
    assert_eq!(original.kind, "sendMessage");
    assert_eq!(
        Value::Object(original.body.clone()),
        json!({"text": "hello world docs", "entities": entities})
    );
    h.connector.stop().await.unwrap();
}
