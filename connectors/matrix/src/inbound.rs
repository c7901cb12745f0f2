//! Matrix room events into the neutral model's [`InboundEvent`]s.
//!
//! The engine takes a stored transaction apart event by event and asks [`convert`] what each
//! one means for the bridge. There are three answers, because "not a message" and "a message we
//! cannot carry" must not be confused: the first is ignored, the second is reported to the
//! sender (issue 5: never dropped in silence).
//!
//! - `m.room.message` text, notice and emote → a message (HTML kept when the format is
//!   `org.matrix.custom.html`), a reply (`m.in_reply_to`) or an edit (`m.replace`, whose
//!   `m.new_content` is the new text);
//! - `m.image`, `m.file`, `m.audio`, `m.video` → an attachment by `mxc://` URL ([`crate::media`]);
//! - `m.reaction` → a reaction; `m.room.redaction` → a delete;
//! - a `network.dm3.envelope` message (gateway mode, docs/gateway.md 1.2) → [`Converted::Sealed`]
//!   with its content as received, which the engine reads and checks;
//! - `m.room.encrypted` → [`Converted::Encrypted`], the event as received: opened in the
//!   engine's job ([`crate::encrypted_inbound`]) and then converted here like any other, or
//!   refused when `[matrix] encryption` is `off`;
//! - other message types (locations, polls for now) → [`Converted::Unbridgeable`];
//! - everything else (membership, state, redacted events) and anything sent by our own ghosts
//!   (the echo of what the bridge itself sent) → [`Converted::Ignored`].
//!
//! A bridged `m.room.message` keeps its `content` exactly as received in
//! [`InboundEvent::original`], relations included: the engine hands it to DM3 readers as a
//! bridge payload (`docs/bridge-payload.md` §8). The homeserver bounds an event to 64 KiB, and
//! the engine leaves the payload out if it is larger than the format allows.

use dm3_bridge_connector::{
    Carried, Content, Delete, EncryptedEvent, NativeContent, Reaction, SealedEnvelope,
};
use dm3_bridge_connector::{
    ConversationId, Edit, EventKind, InboundEvent, Message, NetworkMessageId, NetworkUserId, ReactionKey,
    Text,
};
use ruma::events::room::message::{
    FormattedBody, MessageFormat, MessageType, Relation, RoomMessageEventContent,
};
use ruma::events::room::redaction::RoomRedactionEvent;
use ruma::events::{AnyMessageLikeEvent, AnyTimelineEvent, MessageLikeEvent};
use ruma::serde::Raw;
use ruma::{EventId, RoomId, UserId};

use crate::ghost::GhostNamespace;
use crate::media::inbound_attachment;

/// What a Matrix event means for the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
// Short-lived (one per event of a transaction); an event is the common case.
#[allow(clippy::large_enum_variant)]
pub enum Converted {
    /// Something to bridge.
    Event(InboundEvent),
    /// Nothing to bridge (membership, state, our own echo, a redacted event).
    Ignored,
    /// A message the bridge cannot carry yet; tell the sender.
    Unbridgeable { event_id: String, room_id: String, sender: String, reason: String },
    /// A sealed DM3 envelope from a gateway user's own client (`msgtype` `network.dm3.envelope`).
    Sealed(SealedEnvelope),
    /// An end-to-end encrypted event, to be opened in the engine's job.
    Encrypted(EncryptedEvent),
}

/// The `msgtype` of a gateway document's message (docs/gateway.md 1.2).
pub const GATEWAY_MSGTYPE: &str = "network.dm3.envelope";

/// Converts one raw timeline event of a transaction.
pub fn convert(raw: &Raw<AnyTimelineEvent>, ghosts: &GhostNamespace) -> Converted {
    let Ok(AnyTimelineEvent::MessageLike(event)) = raw.deserialize() else {
        return Converted::Ignored;
    };
    if ghosts.contains(event.sender()) {
        return Converted::Ignored;
    }
    let unbridgeable = |reason: String| Converted::Unbridgeable {
        event_id: event.event_id().to_string(),
        room_id: event.room_id().to_string(),
        sender: event.sender().to_string(),
        reason,
    };
    let mut original = None;
    let kind = match &event {
        AnyMessageLikeEvent::RoomMessage(MessageLikeEvent::Original(message))
            if message.content.msgtype.msgtype() == GATEWAY_MSGTYPE =>
        {
            // Carried as the homeserver sent it: the engine reads and checks the document.
            let ids = (
                ConversationId::new(message.room_id.as_str()),
                NetworkUserId::new(message.sender.as_str()),
                message_id(&message.event_id),
            );
            return match (ids, raw_content(raw)) {
                ((Ok(conversation), Ok(sender), Some(network_event_id)), Some(content)) => {
                    Converted::Sealed(SealedEnvelope {
                        conversation,
                        sender,
                        network_event_id,
                        carried: Carried::Content(content),
                    })
                }
                _ => unbridgeable("the event's ids are unusable".to_owned()),
            };
        }
        AnyMessageLikeEvent::RoomMessage(MessageLikeEvent::Original(message)) => {
            original =
                raw_content(raw).map(|content| Box::new(NativeContent::new("m.room.message", content)));
            match message_kind(&message.content) {
                Ok(kind) => kind,
                Err(reason) => return unbridgeable(reason),
            }
        }
        AnyMessageLikeEvent::Reaction(MessageLikeEvent::Original(reaction)) => {
            let relates = &reaction.content.relates_to;
            let Ok(key) = ReactionKey::new(relates.key.clone()) else {
                return unbridgeable(format!("the reaction key `{}` is not supported", relates.key));
            };
            match message_id(&relates.event_id) {
                Some(target) => EventKind::Reaction(Reaction { target, key }),
                None => return unbridgeable("the reaction's target id is unusable".to_owned()),
            }
        }
        AnyMessageLikeEvent::RoomEncrypted(MessageLikeEvent::Original(encrypted)) => {
            let ids = (
                ConversationId::new(encrypted.room_id.as_str()),
                NetworkUserId::new(encrypted.sender.as_str()),
                message_id(&encrypted.event_id),
            );
            return match (ids, raw.deserialize_as_unchecked::<serde_json::Map<String, serde_json::Value>>()) {
                ((Ok(conversation), Ok(sender), Some(network_event_id)), Ok(event)) => {
                    Converted::Encrypted(EncryptedEvent { conversation, sender, network_event_id, event })
                }
                _ => unbridgeable("the event's ids are unusable".to_owned()),
            };
        }
        AnyMessageLikeEvent::RoomRedaction(RoomRedactionEvent::Original(redaction)) => {
            let target = redaction.content.redacts.as_deref().or(redaction.redacts.as_deref());
            match target.and_then(message_id) {
                Some(target) => {
                    EventKind::Delete(Delete { target, reason: redaction.content.reason.clone() })
                }
                None => return Converted::Ignored,
            }
        }
        _ => return Converted::Ignored,
    };
    match envelope(
        event.room_id(),
        event.sender(),
        event.event_id(),
        event.origin_server_ts().get().into(),
        kind,
    ) {
        Some(inbound) => Converted::Event(InboundEvent { original, ..inbound }),
        None => unbridgeable("the event's ids are unusable".to_owned()),
    }
}

fn envelope(room: &RoomId, sender: &UserId, id: &EventId, ts: u64, kind: EventKind) -> Option<InboundEvent> {
    Some(InboundEvent {
        conversation: ConversationId::new(room.as_str()).ok()?,
        sender: NetworkUserId::new(sender.as_str()).ok()?,
        network_event_id: message_id(id)?,
        timestamp_ms: ts,
        kind,
        original: None,
    })
}

/// The event's `content` object exactly as the homeserver sent it.
fn raw_content(raw: &Raw<AnyTimelineEvent>) -> Option<serde_json::Map<String, serde_json::Value>> {
    raw.get_field("content").ok().flatten()
}

fn message_id(id: &EventId) -> Option<NetworkMessageId> {
    NetworkMessageId::new(id.as_str()).ok()
}

fn message_kind(content: &RoomMessageEventContent) -> Result<EventKind, String> {
    if let Some(Relation::Replacement(replacement)) = &content.relates_to {
        let text = text_of(&replacement.new_content.msgtype)?;
        let target = message_id(&replacement.event_id).ok_or("the edited event's id is unusable")?;
        return Ok(EventKind::Edit(Edit { target, text }));
    }
    let body = match inbound_attachment(&content.msgtype) {
        Some(attachment) => attachment?,
        None => {
            let text = text_of(&content.msgtype)?;
            match &content.msgtype {
                MessageType::Notice(_) => Content::Notice(text),
                _ => Content::Text(text),
            }
        }
    };
    let mut message = Message::new(body);
    message.reply_to = reply_target(content);
    Ok(EventKind::Message(message))
}

/// The target of a reply, if `content` is one.
pub fn reply_target(content: &RoomMessageEventContent) -> Option<NetworkMessageId> {
    match &content.relates_to {
        Some(Relation::Reply(reply)) => message_id(&reply.in_reply_to.event_id),
        _ => None,
    }
}

fn text_of(msgtype: &MessageType) -> Result<Text, String> {
    let (body, formatted) = match msgtype {
        MessageType::Text(text) => (&text.body, &text.formatted),
        MessageType::Notice(notice) => (&notice.body, &notice.formatted),
        MessageType::Emote(emote) => (&emote.body, &emote.formatted),
        other => return Err(format!("{} messages are not bridged yet", other.msgtype())),
    };
    let html = match formatted {
        Some(FormattedBody { format: MessageFormat::Html, body }) => Some(body.clone()),
        _ => None,
    };
    Ok(Text { body: body.clone(), html })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::json;

    use super::*;

    fn ghosts() -> GhostNamespace {
        GhostNamespace::dm3(<&ruma::ServerName>::try_from("localhost").unwrap())
    }

    fn event(sender: &str, kind: &str, content: serde_json::Value) -> Raw<AnyTimelineEvent> {
        Raw::new(&json!({
            "type": kind, "event_id": "$ev", "room_id": "!room", "sender": sender,
            "origin_server_ts": 1_700_000_000_000u64, "content": content,
        }))
        .unwrap()
        .cast_unchecked()
    }

    #[test]
    fn a_gateway_message_is_carried_sealed_with_its_content_as_received() {
        let content = json!({
            "msgtype": "network.dm3.envelope",
            "body": "🔒 DM3 message",
            "network.dm3.envelope": {"deliveryService": "ds.eth", "envelope": "{}", "version": 1},
            "m.mentions": {},
        });
        let Converted::Sealed(sealed) =
            convert(&event("@bob:localhost", "m.room.message", content.clone()), &ghosts())
        else {
            panic!("not sealed");
        };
        assert_eq!((sealed.conversation.as_str(), sealed.sender.as_str()), ("!room", "@bob:localhost"));
        assert_eq!(sealed.carried, Carried::Content(content.as_object().unwrap().clone()));
        // The ghosts' own gateway messages are the echo of the bridge's sends.
        let echo = event("@_dm3_alice.eth:localhost", "m.room.message", content);
        assert_eq!(convert(&echo, &ghosts()), Converted::Ignored);
    }

    fn kind(converted: Converted) -> EventKind {
        match converted {
            Converted::Event(inbound) => {
                assert_eq!(inbound.conversation.as_str(), "!room");
                assert_eq!(inbound.network_event_id.as_str(), "$ev");
                assert_eq!(inbound.timestamp_ms, 1_700_000_000_000);
                inbound.kind
            }
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn formatted_reply() {
        let raw = event(
            "@bob:localhost",
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": "hi", "format": "org.matrix.custom.html", "formatted_body": "<b>hi</b>",
                "m.relates_to": {"m.in_reply_to": {"event_id": "$earlier"}},
            }),
        );
        let Converted::Event(inbound) = convert(&raw, &ghosts()) else { panic!() };
        let original = inbound.original.clone().expect("the content as received");
        assert_eq!(original.kind, "m.room.message");
        assert_eq!(
            serde_json::Value::Object(original.body),
            json!({
                "msgtype": "m.text", "body": "hi", "format": "org.matrix.custom.html", "formatted_body": "<b>hi</b>",
                "m.relates_to": {"m.in_reply_to": {"event_id": "$earlier"}},
            })
        );
        let EventKind::Message(message) = kind(Converted::Event(inbound)) else { panic!() };
        assert_eq!(message.content, Content::Text(Text::formatted("hi", "<b>hi</b>")));
        assert_eq!(message.reply_to.unwrap().as_str(), "$earlier");
    }

    #[test]
    fn edit_reaction_redaction() {
        let edit = event(
            "@bob:localhost",
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": "* fixed",
                "m.new_content": {"msgtype": "m.text", "body": "fixed"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"},
            }),
        );
        assert_eq!(
            kind(convert(&edit, &ghosts())),
            EventKind::Edit(Edit {
                target: NetworkMessageId::new("$orig").unwrap(),
                text: Text::plain("fixed")
            })
        );
        let reaction = event(
            "@bob:localhost",
            "m.reaction",
            json!({
                "m.relates_to": {"rel_type": "m.annotation", "event_id": "$orig", "key": "👍"},
            }),
        );
        assert!(
            matches!(kind(convert(&reaction, &ghosts())), EventKind::Reaction(r) if r.key.as_str() == "👍")
        );
        let redaction =
            event("@bob:localhost", "m.room.redaction", json!({"redacts": "$orig", "reason": "oops"}));
        assert_eq!(
            kind(convert(&redaction, &ghosts())),
            EventKind::Delete(Delete {
                target: NetworkMessageId::new("$orig").unwrap(),
                reason: Some("oops".into())
            })
        );
    }

    #[test]
    fn echoes_state_and_media_are_told_apart() {
        let echo =
            event("@_dm3_alice.eth:localhost", "m.room.message", json!({"msgtype": "m.text", "body": "x"}));
        assert_eq!(convert(&echo, &ghosts()), Converted::Ignored);
        let member: Raw<AnyTimelineEvent> = Raw::new(&json!({
            "type": "m.room.member", "state_key": "@bob:localhost", "event_id": "$m", "room_id": "!room",
            "sender": "@bob:localhost", "origin_server_ts": 1, "content": {"membership": "join"},
        }))
        .unwrap()
        .cast_unchecked();
        assert_eq!(convert(&member, &ghosts()), Converted::Ignored);
        let location = event(
            "@bob:localhost",
            "m.room.message",
            json!({"msgtype": "m.location", "body": "here", "geo_uri": "geo:51.5,0.1"}),
        );
        assert!(
            matches!(convert(&location, &ghosts()), Converted::Unbridgeable { reason, .. } if reason.contains("m.location"))
        );
        let encrypted = event(
            "@bob:localhost",
            "m.room.encrypted",
            json!({"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA", "sender_key": "k", "device_id": "D", "session_id": "s"}),
        );
        let Converted::Encrypted(carried) = convert(&encrypted, &ghosts()) else {
            panic!("not carried encrypted")
        };
        assert_eq!((carried.conversation.as_str(), carried.sender.as_str()), ("!room", "@bob:localhost"));
        assert_eq!(
            serde_json::Value::Object(carried.event),
            encrypted.deserialize_as_unchecked::<serde_json::Value>().unwrap()
        );
    }
}
