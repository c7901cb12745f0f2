//! Native content (a DM3 client's bridge payload) sent into the room as given.
//!
//! The engine has checked the content against the Matrix allow-list (`docs/bridge-payload.md`
//! §4), which refuses `m.relates_to` and `m.new_content` in it: relations are the bridge's to
//! write, from the DM3 message's reference through the message map. So this module adds exactly
//! those (§5) and nothing else:
//! - a reply: `m.relates_to: {"m.in_reply_to": {"event_id"}}`;
//! - an edit of `m.room.message`: `m.new_content` (a copy of the content) and
//!   `m.relates_to: {"rel_type": "m.replace", "event_id"}`;
//! - an edit of `m.room.encrypted`: the same `m.relates_to`, in the clear where Matrix expects
//!   the relations of encrypted events; `m.new_content` is inside the client's ciphertext.
//!
//! The send is the ghost's, idempotent by the transaction id and stamped with the DM3 time, like
//! every other send ([`crate::connector`]). An `m.room.message` payload is cleartext: in an
//! encrypted room it is encrypted with the ghost's device ([`crate::sending`]), or refused by
//! the gate of [`crate::cleartext`]; an `m.room.encrypted` one is ciphertext and goes into an
//! encrypted room as it is.

use dm3_bridge_connector::{
    BoxFuture, ConnectorError, NativeHandling, NativeMessage, NetworkMessageId, Outbound,
};
use serde_json::{Map, Value, json};

use crate::connector::{MatrixConnector, event_id, network_id};
use crate::outgoing::{Route, Target};

/// The event types a payload may carry (the allow-list's; checked again so that a connector
/// never sends a state event or anything else it was not meant to).
const EVENT_TYPES: [&str; 2] = ["m.room.message", ENCRYPTED];

/// The event type of content a client encrypted itself.
const ENCRYPTED: &str = "m.room.encrypted";

/// The event type and content to send for `native`: the content with the relations added.
pub fn event_content(native: &NativeMessage) -> Result<(&str, Map<String, Value>), ConnectorError> {
    let event_type = native.content.kind.as_str();
    if !EVENT_TYPES.contains(&event_type) {
        return Err(ConnectorError::Permanent(format!(
            "`{event_type}` events are not sent from bridge payloads; only {}",
            EVENT_TYPES.join(" and ")
        )));
    }
    let mut content = native.content.body.clone();
    if let Some(target) = &native.replaces {
        let target = event_id(target)?;
        if event_type == "m.room.message" {
            content.insert("m.new_content".to_owned(), Value::Object(native.content.body.clone()));
        }
        content
            .insert("m.relates_to".to_owned(), json!({"rel_type": "m.replace", "event_id": target.as_str()}));
    } else if let Some(target) = &native.reply_to {
        let target = event_id(target)?;
        content.insert("m.relates_to".to_owned(), json!({"m.in_reply_to": {"event_id": target.as_str()}}));
    }
    Ok((event_type, content))
}

impl NativeHandling for MatrixConnector {
    fn send_native<'a>(
        &'a self,
        native: &'a Outbound<NativeMessage>,
    ) -> BoxFuture<'a, Result<NetworkMessageId, ConnectorError>> {
        Box::pin(async move {
            let (ghost, room, txn) = self.parts(native)?;
            let (event_type, content) = event_content(&native.payload)?;
            // A prepared `m.room.encrypted` is ciphertext already (docs/bridge-payload.md §6);
            // cleartext is encrypted with the ghost's device in an encrypted room.
            let route =
                if event_type == ENCRYPTED { Route::Clear } else { self.route(&ghost, &room).await? };
            let id = self.post(&route, Target::of(&ghost, &room, &txn, native), event_type, &content).await?;
            network_id(&id)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use dm3_bridge_connector::NativeContent;

    use super::*;

    fn native(kind: &str, body: Value) -> NativeMessage {
        NativeMessage::new(NativeContent::new(kind, body.as_object().unwrap().clone()))
    }

    fn id(text: &str) -> NetworkMessageId {
        NetworkMessageId::new(text).unwrap()
    }

    #[test]
    fn relations_are_added_as_the_doc_says() {
        let text = json!({"msgtype": "m.text", "body": "hi", "format": "org.matrix.custom.html", "formatted_body": "<b>hi</b>"});
        let new = native("m.room.message", text.clone());
        assert_eq!(event_content(&new).unwrap(), ("m.room.message", text.as_object().unwrap().clone()));

        let reply = NativeMessage { reply_to: Some(id("$q")), ..new.clone() };
        let (_, content) = event_content(&reply).unwrap();
        assert_eq!(content["m.relates_to"], json!({"m.in_reply_to": {"event_id": "$q"}}));
        assert_eq!(content["formatted_body"], "<b>hi</b>");

        let edit = NativeMessage { replaces: Some(id("$old")), ..new };
        let (_, content) = event_content(&edit).unwrap();
        assert_eq!(content["m.new_content"], text);
        assert_eq!(content["m.relates_to"], json!({"rel_type": "m.replace", "event_id": "$old"}));

        let encrypted = json!({"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA", "session_id": "s"});
        let edit = NativeMessage { replaces: Some(id("$old")), ..native("m.room.encrypted", encrypted) };
        let (event_type, content) = event_content(&edit).unwrap();
        assert_eq!(event_type, "m.room.encrypted");
        assert!(content.get("m.new_content").is_none(), "the new content is inside the ciphertext");
        assert_eq!(content["m.relates_to"]["rel_type"], "m.replace");
    }

    #[test]
    fn other_event_types_and_bad_ids_are_refused() {
        let state = native("m.room.topic", json!({"topic": "x"}));
        assert!(
            matches!(event_content(&state), Err(ConnectorError::Permanent(r)) if r.contains("m.room.topic"))
        );
        let reply =
            NativeMessage { reply_to: Some(id("not-an-event-id")), ..native("m.room.message", json!({})) };
        assert!(matches!(event_content(&reply), Err(ConnectorError::Permanent(_))));
    }
}
