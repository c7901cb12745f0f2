//! A Matrix user's end-to-end encrypted event, opened in the engine's job and then bridged as
//! the same event in the clear would be (docs/engine.md, "Encrypted rooms: plan").
//!
//! The event was stored as it came ([`crate::inbound::Converted::Encrypted`]) and acknowledged
//! to the homeserver once durable; its room key may come later, over Olm, to the ghost's device
//! ([`crate::crypto::receive`]). So opening it is a step of the job, retried by the engine
//! while the key is missing ([`DecryptFailure::MissingKey`]). A miss first fetches what the
//! homeserver holds for the ghost's device ([`crate::crypto::catch_up`]: its push of to-device
//! messages can lose some) and tries once more; after the first miss the ghost's device also
//! asks the sender's devices for it ([`crate::crypto::key_request`]).
//!
//! Before anything decrypted is believed:
//! - the plaintext names the event's room (checked as it is decrypted, [`crate::crypto::megolm`]);
//! - the room key came, Olm-authenticated, from the event's own sender: a key bob's device sent
//!   cannot make an event of eve's say anything, nor the other way round;
//! - that device is one the sender's device list shows, self-signed, with the signing key it
//!   claimed ([`crate::crypto::device_lists`]), and with `sender_trust = "cross-signed"` one the
//!   sender cross-signed with the identity pinned for them ([`crate::sender_trust`]);
//! - the ciphertext's message index is this event's: the same ciphertext posted again as another
//!   event (a replay) is refused;
//! - the plaintext is not itself encrypted.
//!
//! A refusal is never bridged; the engine tells the sender why in the room.
//!
//! The opened event is the encrypted one with the plaintext's `type` and `content`: its id,
//! sender, room and time stay the homeserver's. A relation (`m.relates_to`: a reply, an edit, a
//! reaction) travels in the clear beside the ciphertext, as the spec says, so it is taken from
//! there when the plaintext has none.

use std::time::Duration;

use dm3_bridge_connector::{
    BoxFuture, ConnectorError, DecryptFailure, DecryptionHandling, EncryptedEvent, Inbound, RemoteIdentity,
};
use ruma::events::AnyTimelineEvent;
use ruma::serde::Raw;
use serde_json::{Map, Value};

use crate::batch::message_item;
use crate::connector::MatrixConnector;
use crate::crypto::{DecryptError, GhostDevices, IndexClaim};
use crate::decrypting::{DEFAULT_UNDECRYPTABLE_AFTER, Decrypting};
use crate::encryption::ENCRYPTION_OFF;
use crate::sender_trust::sender_device_trusted;

impl MatrixConnector {
    /// Opens encrypted events with the ghosts' devices (which must be set too), as `decrypting`
    /// says; the first setting stays.
    pub fn set_decrypting(&self, decrypting: Decrypting) {
        if self.decrypting.set(decrypting).is_err() {
            tracing::warn!("the connector's decryption was set twice; the first stays");
        }
    }

    /// Whether encrypted rooms are taken part in: the ghosts have devices and their events are
    /// opened.
    pub fn reads_encrypted_rooms(&self) -> bool {
        self.decrypting().is_some()
    }

    fn decrypting(&self) -> Option<(&GhostDevices, &Decrypting)> {
        Some((self.devices()?, self.decrypting.get()?))
    }

    async fn open(
        &self,
        event: &EncryptedEvent,
        remote: &RemoteIdentity,
    ) -> Result<Option<Inbound>, DecryptFailure> {
        let (devices, decrypting) =
            self.decrypting().ok_or_else(|| DecryptFailure::Refused(ENCRYPTION_OFF.to_owned()))?;
        let ghost = self.ghosts().user_id(remote).map_err(|e| ConnectorError::Permanent(e.to_string()))?;
        let room = event.conversation.as_str();
        let content = event
            .event
            .get("content")
            .and_then(Value::as_object)
            .ok_or_else(|| DecryptFailure::Refused("the event has no content".to_owned()))?;
        let opened = match devices.open_event(&ghost, room, content).await {
            Ok(opened) => opened,
            Err(e) if e.is_missing_key() => {
                // The homeserver's push may have lost the key: fetched from the device's inbox
                // there (at most one catch-up per device every few seconds), and tried again.
                if let Err(error) = devices.catch_up(&ghost).await {
                    tracing::info!(%ghost, %error, "the catch-up for a missing room key failed; the job tries again");
                }
                devices.open_event(&ghost, room, content).await.map_err(failure)?
            }
            Err(e) => return Err(failure(e)),
        };
        if opened.sender_user != event.sender.as_str() {
            return Err(DecryptFailure::Refused(format!(
                "its key was sent by {}, not by its sender {}",
                opened.sender_user, event.sender
            )));
        }
        sender_device_trusted(devices, &ghost, event, &opened, decrypting.sender_trust).await?;
        if content.get("sender_key").and_then(Value::as_str).is_some_and(|key| key != opened.sender_key) {
            return Err(DecryptFailure::Refused(
                "it names another device than the one that sent its key".to_owned(),
            ));
        }
        if opened.event.get("type").and_then(Value::as_str) == Some("m.room.encrypted") {
            return Err(DecryptFailure::Refused("it is encrypted twice".to_owned()));
        }
        let claim = IndexClaim {
            ghost: &ghost,
            room_id: room,
            session_id: &opened.session_id,
            message_index: opened.message_index,
            event_id: event.network_event_id.as_str(),
        };
        if !devices.claim_index(claim).await.map_err(|e| e.to_connector_error())? {
            return Err(DecryptFailure::Refused(format!(
                "it repeats the ciphertext of an earlier message (index {} of its key)",
                opened.message_index
            )));
        }
        let raw = in_the_clear(&event.event, opened.event)
            .map_err(|e| DecryptFailure::Refused(format!("its plaintext is not an event: {e}")))?;
        Ok(message_item(&raw, self.ghosts(), &decrypting.commands, false))
    }
}

/// The encrypted event with the plaintext's `type` and `content`, its relation taken from the
/// clear part if the plaintext has none.
fn in_the_clear(
    encrypted: &Map<String, Value>,
    plaintext: Map<String, Value>,
) -> Result<Raw<AnyTimelineEvent>, serde_json::Error> {
    let mut event = encrypted.clone();
    let kind = plaintext.get("type").cloned().unwrap_or(Value::Null);
    let mut content = match plaintext.get("content") {
        Some(Value::Object(content)) => content.clone(),
        _ => Map::new(),
    };
    let relation = encrypted.get("content").and_then(|c| c.get("m.relates_to"));
    if let Some(relation) = relation
        && !content.contains_key("m.relates_to")
    {
        content.insert("m.relates_to".to_owned(), relation.clone());
    }
    event.insert("type".to_owned(), kind);
    event.insert("content".to_owned(), Value::Object(content));
    Ok(Raw::new(&event)?.cast_unchecked())
}

/// A decryption that failed, as the engine tells it apart.
fn failure(error: DecryptError) -> DecryptFailure {
    match error {
        e if e.is_missing_key() => DecryptFailure::MissingKey(e.to_string()),
        DecryptError::Megolm(e) => DecryptFailure::Refused(e.to_string()),
        DecryptError::Device(e) => e.to_connector_error().into(),
    }
}

impl DecryptionHandling for MatrixConnector {
    fn decrypt<'a>(
        &'a self,
        event: &'a EncryptedEvent,
        remote: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<Option<Inbound>, DecryptFailure>> {
        Box::pin(self.open(event, remote))
    }

    fn request_key<'a>(
        &'a self,
        event: &'a EncryptedEvent,
        remote: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            let Some((devices, _)) = self.decrypting() else { return Ok(()) };
            let ghost =
                self.ghosts().user_id(remote).map_err(|e| ConnectorError::Permanent(e.to_string()))?;
            let content = event.event.get("content").and_then(Value::as_object).cloned().unwrap_or_default();
            devices
                .request_room_key(
                    &ghost,
                    event.conversation.as_str(),
                    event.network_event_id.as_str(),
                    event.sender.as_str(),
                    &content,
                )
                .await
                .map_err(|e| e.to_connector_error())
        })
    }

    fn patience(&self) -> Duration {
        self.decrypting.get().map_or(DEFAULT_UNDECRYPTABLE_AFTER, |d| d.patience)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::json;

    use super::*;

    #[test]
    fn the_opened_event_keeps_the_homeservers_ids_and_the_clear_relation() {
        let encrypted = json!({
            "type": "m.room.encrypted", "event_id": "$e", "room_id": "!r", "sender": "@bob:hs",
            "origin_server_ts": 5,
            "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "x", "session_id": "s",
                        "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"}},
        });
        let plaintext = json!({"type": "m.room.message", "room_id": "!r",
                               "content": {"msgtype": "m.text", "body": "* hi", "m.new_content": {"msgtype": "m.text", "body": "hi"}}});
        let raw =
            in_the_clear(encrypted.as_object().unwrap(), plaintext.as_object().unwrap().clone()).unwrap();
        let event: Value = raw.deserialize_as_unchecked().unwrap();
        assert_eq!(
            (&event["type"], &event["event_id"], &event["sender"]),
            (&json!("m.room.message"), &json!("$e"), &json!("@bob:hs"))
        );
        assert_eq!(event["content"]["m.relates_to"]["event_id"], "$orig");
        assert_eq!(event["content"]["body"], "* hi");
        // A relation inside the plaintext wins over the clear one.
        let inner = json!({"type": "m.room.message", "content": {"msgtype": "m.text", "body": "r",
                           "m.relates_to": {"m.in_reply_to": {"event_id": "$inner"}}}});
        let raw = in_the_clear(encrypted.as_object().unwrap(), inner.as_object().unwrap().clone()).unwrap();
        let event: Value = raw.deserialize_as_unchecked().unwrap();
        assert_eq!(event["content"]["m.relates_to"]["m.in_reply_to"]["event_id"], "$inner");
    }
}
