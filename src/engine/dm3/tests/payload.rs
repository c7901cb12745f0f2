//! Bridge payloads through the converters (docs/bridge-payload.md §5 and §8): forwarded verbatim
//! with the bridge's relations, refused as a whole with the text rendered and the reason kept
//! for the sender, and the original network content attached on the way to DM3.

use ::dm3::bridge_payload::{self, BridgePayload, MatrixEvent, TelegramCall};
use ::dm3::message::{Attachment as Dm3Attachment, Message as Dm3Message};
use dm3_bridge_connector::{
    Content, EventKind, Message, NativeContent, NativeMessage, Reaction, ReactionKey, Text,
};
use serde_json::{Map, Value, json};

use super::*;

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn matrix_payload(content: Value) -> Dm3Attachment {
    bridge_payload::attachment(&BridgePayload::Matrix(MatrixEvent {
        event_type: "m.room.message".into(),
        content: object(content),
        encrypted: false,
    }))
    .unwrap()
}

fn telegram_payload(parameters: Value) -> Dm3Attachment {
    bridge_payload::attachment(&BridgePayload::Telegram(TelegramCall {
        method: "sendMessage".into(),
        parameters: object(parameters),
    }))
    .unwrap()
}

fn html_content() -> Value {
    json!({
        "msgtype": "m.text",
        "body": "see you at 5",
        "format": "org.matrix.custom.html",
        "formatted_body": "see you at <b>5</b>",
        "m.mentions": {"user_ids": ["@bob:example.org"]},
    })
}

impl World {
    /// Network → DM3 for a whole event (with its original content).
    async fn to_dm3_event(&self, event: &InboundEvent) -> Result<ToDm3, ConvertError> {
        let signing = &self.bob.keys.profile_keys().signing;
        let limits = AttachmentLimits::default();
        to_dm3(event, Network::Matrix, &self.bob.name, &self.alice.name, signing, &self.references, &limits)
            .await
    }

    async fn alice_sends(&self, message: Dm3Message) -> Result<ToNetwork, ConvertError> {
        let opened = self.deliver_and_open(&self.alice.sign(message), &self.alice, &self.bob).await;
        self.to_network(&opened).await
    }
}

#[tokio::test]
async fn a_valid_payload_is_the_whole_message_with_the_bridges_relations() {
    let w = world();
    let builder = w.alice.builder_to(&w.bob, 7);
    // The Telegram payload and the image are not sent: the Matrix payload is the whole rendering.
    let attachments = || {
        Some(vec![
            telegram_payload(json!({"text": "hi"})),
            matrix_payload(html_content()),
            Dm3Attachment::inline("a.png", "image/png", b"png"),
        ])
    };
    let native = |reply_to: Option<&str>, replaces: Option<&str>| {
        ToNetwork::Send(vec![EventKind::Native(Box::new(NativeMessage {
            content: NativeContent::new("m.room.message", object(html_content())),
            reply_to: reply_to.map(id),
            replaces: replaces.map(id),
        }))])
    };
    assert_eq!(w.alice_sends(builder.text("fallback", attachments())).await.unwrap(), native(None, None));
    assert_eq!(
        w.alice_sends(builder.reply("fallback", &w.original, attachments())).await.unwrap(),
        native(Some("$orig"), None)
    );
    assert_eq!(
        w.alice_sends(builder.edit("fallback", &w.original, attachments())).await.unwrap(),
        native(None, Some("$orig"))
    );
    // A reply to a message this conversation never had is still a whole message.
    let stranger = alice_hash_of(&w, "never bridged");
    assert_eq!(
        w.alice_sends(builder.reply("x", &stranger, attachments())).await.unwrap(),
        native(None, None)
    );
}

#[tokio::test]
async fn a_refused_payload_renders_the_text_and_keeps_the_reason_for_the_sender() {
    let w = world();
    let builder = w.alice.builder_to(&w.bob, 7);
    let mut relates = html_content();
    relates["m.relates_to"] = json!({"m.in_reply_to": {"event_id": "$abc"}});
    let image = Dm3Attachment::inline("a.png", "image/png", b"png");
    let refused = matrix_payload(relates);
    let converted = w.alice_sends(builder.text("*fallback*", Some(vec![refused.clone()]))).await.unwrap();
    let ToNetwork::Rendered { events, payload_refused } = converted else { panic!("{converted:?}") };
    assert_eq!(
        events,
        vec![EventKind::Message(Message::new(Content::Text(Text::formatted(
            "*fallback*",
            "<p><em>fallback</em></p>"
        ))))],
        "the text as if there were no payload, and the payload not sent as a file"
    );
    assert!(payload_refused.contains("`content.m.relates_to` is set by the bridge"), "{payload_refused}");

    // Other files still go, with the text as their caption.
    let converted = w.alice_sends(builder.text("look", Some(vec![refused.clone(), image]))).await.unwrap();
    let ToNetwork::Rendered { events, .. } = converted else { panic!("{converted:?}") };
    assert!(matches!(&events[..], [EventKind::Message(Message { content: Content::Attachment { .. }, .. })]));

    // Edits fall back the same way.
    let edit = builder.edit("better", &w.original, Some(vec![refused.clone()]));
    let ToNetwork::Rendered { events, .. } = w.alice_sends(edit).await.unwrap() else { panic!() };
    assert_eq!(events, vec![EventKind::Edit(Edit { target: id("$orig"), text: Text::plain("better") })]);

    // Nothing to fall back on: the message fails with the payload's reason, never in silence.
    let empty = w.alice_sends(builder.text("", Some(vec![refused]))).await.unwrap_err();
    assert!(matches!(&empty, ConvertError::PayloadRefused(r) if r.contains("m.relates_to")), "{empty}");
    assert_eq!(empty.kind(), FailureKind::Permanent);
}

#[tokio::test]
async fn unreadable_or_ambiguous_payloads_are_refused_by_name() {
    let w = world();
    let builder = w.alice.builder_to(&w.bob, 7);
    let twice = Some(vec![matrix_payload(html_content()), matrix_payload(html_content())]);
    let ToNetwork::Rendered { payload_refused, .. } = w.alice_sends(builder.text("hi", twice)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(payload_refused, "the message carries more than one bridge payload for matrix");
    let broken = Dm3Attachment::new("data:application/vnd.dm3.bridge-payload+json;base64,*");
    let ToNetwork::Rendered { payload_refused, .. } =
        w.alice_sends(builder.text("hi", Some(vec![broken]))).await.unwrap()
    else {
        panic!()
    };
    assert!(payload_refused.contains("not valid base64"), "{payload_refused}");
    // A payload for another network only is ignored: the text goes, no report.
    let other = Some(vec![telegram_payload(json!({"text": "hi"}))]);
    assert_eq!(
        w.alice_sends(builder.text("hi", other)).await.unwrap(),
        ToNetwork::Send(vec![text_message("hi")])
    );
}

fn alice_hash_of(w: &World, text: &str) -> ::dm3::message::MessageHash {
    w.alice.sign(w.alice.builder_to(&w.bob, 3).text(text, None)).hash()
}

/// The bridge payloads among a built message's attachments, decoded with the SDK.
fn payloads(message: &Dm3Message) -> Vec<BridgePayload> {
    message
        .attachments()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry["data"].as_str())
        .filter(|uri| bridge_payload::is_bridge_payload(uri))
        .map(|uri| bridge_payload::decode(uri).unwrap())
        .collect()
}

#[tokio::test]
async fn the_original_content_rides_along_and_decodes_with_the_sdk() {
    let w = world();
    let content = json!({
        "msgtype": "m.text", "body": "sure, see **the docs**", "format": "org.matrix.custom.html",
        "formatted_body": "sure, see <strong>the docs</strong>",
        "m.relates_to": {"m.in_reply_to": {"event_id": "$orig"}},
    });
    let reply = EventKind::Message(
        Message::new(Content::Text(Text::plain("sure, see **the docs**"))).replying_to(id("$orig")),
    );
    let mut event = event(reply);
    event.original = Some(Box::new(NativeContent::new("m.room.message", object(content.clone()))));
    let ToDm3::Send(built) = w.to_dm3_event(&event).await.unwrap() else { panic!("skipped") };
    assert_eq!(built.message.text(), Some("sure, see **the docs**"), "the plain text is the message");
    assert_eq!(
        payloads(&built.message),
        vec![BridgePayload::Matrix(MatrixEvent {
            event_type: "m.room.message".into(),
            content: object(content.clone()),
            encrypted: false,
        })],
        "the content exactly as received, relation included"
    );
    assert_eq!(
        bridge_payload::find(&built.message, Network::Matrix).unwrap().map(|p| p.network()),
        Some(Network::Matrix)
    );

    // Edits carry it too; reactions say everything themselves.
    let mut edit = event.clone();
    edit.kind = EventKind::Edit(Edit { target: id("$orig"), text: Text::plain("fixed") });
    let ToDm3::Send(built) = w.to_dm3_event(&edit).await.unwrap() else { panic!() };
    assert_eq!(payloads(&built.message).len(), 1);
    let mut reaction = event.clone();
    reaction.kind =
        EventKind::Reaction(Reaction { target: id("$orig"), key: ReactionKey::new("👍").unwrap() });
    let ToDm3::Send(built) = w.to_dm3_event(&reaction).await.unwrap() else { panic!() };
    assert!(payloads(&built.message).is_empty(), "{:?}", built.message.attachments());

    // Too large for a payload: left out, the message still goes.
    let mut huge = event.clone();
    let mut big = object(content);
    big.insert("body".into(), "x".repeat(bridge_payload::MAX_JSON_BYTES).into());
    huge.original = Some(Box::new(NativeContent::new("m.room.message", big)));
    let ToDm3::Send(built) = w.to_dm3_event(&huge).await.unwrap() else { panic!() };
    assert_eq!(built.message.text(), Some("sure, see **the docs**"));
    assert!(payloads(&built.message).is_empty(), "the oversized original is skipped, not the message");
}

#[test]
fn a_telegram_original_becomes_a_telegram_payload() {
    let mut event = event(text_message("hi"));
    let call = json!({"text": "hi", "entities": [{"type": "bold", "offset": 0, "length": 2}]});
    event.original = Some(Box::new(NativeContent::new("sendMessage", object(call.clone()))));
    let attachment =
        crate::engine::dm3::bridge_payload::original_content_attachment(&event, Network::Telegram).unwrap();
    assert_eq!(
        bridge_payload::decode(attachment.data()).unwrap(),
        BridgePayload::Telegram(TelegramCall { method: "sendMessage".into(), parameters: object(call) })
    );
}
