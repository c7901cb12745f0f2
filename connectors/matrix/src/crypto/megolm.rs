//! Room keys (`m.room_key`) kept as inbound Megolm sessions, and room events decrypted with
//! them.
//!
//! A room key is believed only from an Olm message whose payload passed the checks of
//! [`super::olm`], and only for Megolm (`m.megolm.v1.aes-sha2`). An event decrypted with it is
//! from the device whose Curve25519 key brought the key; its `room_id` must be the room the
//! key was given for, or a key for one room could be used to put words into another.
//!
//! A key asked for again (`m.room_key_request`) comes back as `m.forwarded_room_key`, in the
//! export format. It is believed only from the device that made the session (the Olm sender's
//! key is the key's `sender_key`, and no other device forwarded it on the way): that is the
//! same key, from the same device, as an `m.room_key`, and no third device can vouch for a
//! session it did not make.

use serde_json::{Map, Value};
use vodozemac::megolm::{ExportedSessionKey, InboundGroupSession, MegolmMessage, SessionConfig, SessionKey};

use super::account::MEGOLM_ALGORITHM;
use super::pickle::SecretPickle;

/// Largest Megolm ciphertext decrypted, in base64 characters: Synapse refuses events over
/// 64 KiB, so anything larger did not come from a homeserver.
pub const MAX_CIPHERTEXT_CHARS: usize = 64 * 1024;

/// Why a room key or an event could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MegolmError {
    #[error("not a Megolm room key: {0}")]
    BadKey(String),
    #[error("not a Megolm event: {0}")]
    BadEvent(String),
    /// The session is not known (yet): a late key, held and retried.
    #[error("no room key for session {0} (yet)")]
    MissingKey(String),
    #[error("the event does not decrypt with its room key: {0}")]
    Undecryptable(String),
}

/// A room key as received.
pub struct RoomKey {
    pub room_id: String,
    pub session_id: String,
    pub session: InboundGroupSession,
}

impl std::fmt::Debug for RoomKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomKey")
            .field("room_id", &self.room_id)
            .field("session_id", &self.session_id)
            .finish()
    }
}

/// The room key an `m.room_key` payload's `content` carries.
pub fn room_key(content: &Map<String, Value>) -> Result<RoomKey, MegolmError> {
    let text = |key: &str| content.get(key).and_then(Value::as_str);
    if text("algorithm") != Some(MEGOLM_ALGORITHM) {
        return Err(MegolmError::BadKey("not m.megolm.v1.aes-sha2".to_owned()));
    }
    let room_id = text("room_id").ok_or_else(|| MegolmError::BadKey("no room_id".to_owned()))?;
    let key = SessionKey::from_base64(text("session_key").unwrap_or_default())
        .map_err(|e| MegolmError::BadKey(e.to_string()))?;
    let session = InboundGroupSession::new(&key, SessionConfig::version_1());
    if text("session_id") != Some(session.session_id().as_str()) {
        return Err(MegolmError::BadKey("the session_id is not the key's".to_owned()));
    }
    Ok(RoomKey { room_id: room_id.to_owned(), session_id: session.session_id(), session })
}

/// The room key an `m.forwarded_room_key` payload's `content` carries, if the device whose
/// Curve25519 key is `olm_sender_key` made the session itself.
pub fn forwarded_room_key(
    content: &Map<String, Value>,
    olm_sender_key: &str,
) -> Result<RoomKey, MegolmError> {
    let text = |key: &str| content.get(key).and_then(Value::as_str);
    if text("algorithm") != Some(MEGOLM_ALGORITHM) {
        return Err(MegolmError::BadKey("not m.megolm.v1.aes-sha2".to_owned()));
    }
    if text("sender_key") != Some(olm_sender_key) {
        return Err(MegolmError::BadKey("a key forwarded by a device that did not make it".to_owned()));
    }
    let chain = content.get("forwarding_curve25519_key_chain").and_then(Value::as_array);
    if chain.is_some_and(|chain| !chain.is_empty()) {
        return Err(MegolmError::BadKey("a key forwarded through other devices".to_owned()));
    }
    let room_id = text("room_id").ok_or_else(|| MegolmError::BadKey("no room_id".to_owned()))?;
    let key = ExportedSessionKey::from_base64(text("session_key").unwrap_or_default())
        .map_err(|e| MegolmError::BadKey(e.to_string()))?;
    let session = InboundGroupSession::import(&key, SessionConfig::version_1());
    if text("session_id") != Some(session.session_id().as_str()) {
        return Err(MegolmError::BadKey("the session_id is not the key's".to_owned()));
    }
    Ok(RoomKey { room_id: room_id.to_owned(), session_id: session.session_id(), session })
}

/// A room key's pickle, to be sealed by the store.
pub fn pickle(session: &InboundGroupSession) -> Result<SecretPickle, serde_json::Error> {
    serde_json::to_vec(&session.pickle()).map(SecretPickle::from_bytes)
}

/// The room key a stored pickle holds.
pub fn unpickle(pickle: &SecretPickle) -> Result<InboundGroupSession, serde_json::Error> {
    serde_json::from_slice::<vodozemac::megolm::InboundGroupSessionPickle>(pickle.expose())
        .map(InboundGroupSession::from_pickle)
}

/// The fields of an `m.room.encrypted` room event's content that find its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MegolmEnvelope {
    pub session_id: String,
    pub ciphertext: String,
}

/// Reads a Megolm `m.room.encrypted` content, bounded.
pub fn envelope(content: &Map<String, Value>) -> Result<MegolmEnvelope, MegolmError> {
    let text = |key: &str| content.get(key).and_then(Value::as_str);
    if text("algorithm") != Some(MEGOLM_ALGORITHM) {
        return Err(MegolmError::BadEvent("not m.megolm.v1.aes-sha2".to_owned()));
    }
    let ciphertext = text("ciphertext").unwrap_or_default();
    if ciphertext.len() > MAX_CIPHERTEXT_CHARS {
        return Err(MegolmError::BadEvent("ciphertext over the size bound".to_owned()));
    }
    let session_id = text("session_id").ok_or_else(|| MegolmError::BadEvent("no session_id".to_owned()))?;
    Ok(MegolmEnvelope { session_id: session_id.to_owned(), ciphertext: ciphertext.to_owned() })
}

/// Decrypts `envelope` of an event in `room_id` with `session` (the room key kept for its
/// session id): the plaintext event (`type`, `content`), checked to be for this room.
pub fn decrypt(
    session: &mut InboundGroupSession,
    room_id: &str,
    envelope: &MegolmEnvelope,
) -> Result<Map<String, Value>, MegolmError> {
    decrypt_at(session, room_id, envelope).map(|(event, _)| event)
}

/// [`decrypt`], with the message index the ciphertext was at (one event per index: a second
/// event at an index already seen is a replay).
pub fn decrypt_at(
    session: &mut InboundGroupSession,
    room_id: &str,
    envelope: &MegolmEnvelope,
) -> Result<(Map<String, Value>, u32), MegolmError> {
    let message =
        MegolmMessage::from_base64(&envelope.ciphertext).map_err(|e| MegolmError::BadEvent(e.to_string()))?;
    let decrypted = session.decrypt(&message).map_err(|e| MegolmError::Undecryptable(e.to_string()))?;
    let event: Map<String, Value> = serde_json::from_slice(&decrypted.plaintext)
        .map_err(|e| MegolmError::Undecryptable(format!("not a JSON object: {e}")))?;
    if event.get("room_id").and_then(Value::as_str) != Some(room_id) {
        return Err(MegolmError::Undecryptable("the event was encrypted for another room".to_owned()));
    }
    Ok((event, decrypted.message_index))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::json;
    use vodozemac::megolm::GroupSession;

    use super::*;

    fn key_content(outbound: &GroupSession, room: &str) -> Map<String, Value> {
        json!({
            "algorithm": MEGOLM_ALGORITHM, "room_id": room,
            "session_id": outbound.session_id(), "session_key": outbound.session_key().to_base64(),
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn encrypted(outbound: &mut GroupSession, event: Value) -> Map<String, Value> {
        json!({
            "algorithm": MEGOLM_ALGORITHM, "session_id": outbound.session_id(),
            "ciphertext": outbound.encrypt(event.to_string()).to_base64(),
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn a_room_key_decrypts_the_rooms_events_and_no_other_rooms() {
        let mut outbound = GroupSession::new(SessionConfig::version_1());
        let mut key = room_key(&key_content(&outbound, "!room:hs")).unwrap();
        let event = json!({"type": "m.room.message", "room_id": "!room:hs", "content": {"body": "hi", "msgtype": "m.text"}});
        let content = encrypted(&mut outbound, event.clone());
        let decrypted = decrypt(&mut key.session, "!room:hs", &envelope(&content).unwrap()).unwrap();
        assert_eq!(Value::Object(decrypted), event);
        let elsewhere = encrypted(
            &mut outbound,
            json!({"type": "m.room.message", "room_id": "!other:hs", "content": {}}),
        );
        let refused = decrypt(&mut key.session, "!room:hs", &envelope(&elsewhere).unwrap()).unwrap_err();
        assert!(matches!(refused, MegolmError::Undecryptable(_)));
    }

    #[test]
    fn a_forwarded_key_is_believed_only_from_the_device_that_made_it() {
        let mut outbound = GroupSession::new(SessionConfig::version_1());
        let exported = InboundGroupSession::new(&outbound.session_key(), SessionConfig::version_1())
            .export_at(0)
            .unwrap();
        let session_id = outbound.session_id();
        let forwarded = |sender_key: &str, chain: Value| {
            json!({
                "algorithm": MEGOLM_ALGORITHM, "room_id": "!room:hs", "sender_key": sender_key,
                "session_id": session_id, "session_key": exported.to_base64(),
                "sender_claimed_ed25519_key": "ed", "forwarding_curve25519_key_chain": chain,
            })
            .as_object()
            .unwrap()
            .clone()
        };
        let mut key = forwarded_room_key(&forwarded("bobs-key", json!([])), "bobs-key").unwrap();
        let content =
            encrypted(&mut outbound, json!({"type": "m.room.message", "room_id": "!room:hs", "content": {}}));
        let (_, index) = decrypt_at(&mut key.session, "!room:hs", &envelope(&content).unwrap()).unwrap();
        assert_eq!(index, 0);
        let by_another = forwarded_room_key(&forwarded("bobs-key", json!([])), "eves-key").unwrap_err();
        assert!(matches!(by_another, MegolmError::BadKey(_)));
        let relayed = forwarded_room_key(&forwarded("bobs-key", json!(["carols-key"])), "bobs-key");
        assert!(matches!(relayed, Err(MegolmError::BadKey(_))));
    }

    #[test]
    fn odd_keys_and_events_are_refused() {
        let outbound = GroupSession::new(SessionConfig::version_1());
        let mut lying = key_content(&outbound, "!room:hs");
        lying.insert("session_id".to_owned(), json!("another"));
        assert!(matches!(room_key(&lying), Err(MegolmError::BadKey(_))));
        let huge = json!({"algorithm": MEGOLM_ALGORITHM, "session_id": "s", "ciphertext": "A".repeat(MAX_CIPHERTEXT_CHARS + 1)});
        assert!(matches!(envelope(huge.as_object().unwrap()), Err(MegolmError::BadEvent(_))));
        let olm = json!({"algorithm": "m.olm.v1.curve25519-aes-sha2"});
        assert!(matches!(envelope(olm.as_object().unwrap()), Err(MegolmError::BadEvent(_))));
    }
}
