//! A room key sent over Olm: the `m.room_key` payload for one device, and its encryption with
//! the Olm session the ghost's device has with it.
//!
//! The payload names both ends (sender and sending device with its Ed25519 key, recipient with
//! theirs), as the spec requires, so the recipient can refuse a key relayed to it under someone
//! else's name; the envelope is `m.olm.v1.curve25519-aes-sha2`, keyed by the recipient's
//! Curve25519 key. A session the ghost opened with a claimed one-time key sends pre-key
//! messages until the recipient answers; vodozemac decides the message type.

use serde_json::{Map, Value, json};
use vodozemac::olm::Session;

use super::account::OLM_ALGORITHM;
use super::device::GhostDevice;
use super::recipients::Recipient;
use super::signing::object;

/// A room key could not be encrypted for a device (its Olm session is unusable).
#[derive(Debug, thiserror::Error)]
#[error("the room key cannot be encrypted for a device: {0}")]
pub struct ShareError(String);

/// The sending device's public keys.
#[derive(Debug, Clone)]
pub struct Sender<'a> {
    pub device: &'a GhostDevice,
    pub curve25519: String,
    pub ed25519: String,
}

/// The plaintext Olm payload that gives `recipient` the room key `room_key`.
pub fn room_key_payload(sender: &Sender<'_>, recipient: &Recipient, room_key: &Map<String, Value>) -> Value {
    json!({
        "type": "m.room_key",
        "content": room_key,
        "sender": sender.device.user.as_str(),
        "sender_device": sender.device.device.as_str(),
        "keys": {"ed25519": sender.ed25519},
        "recipient": recipient.user.as_str(),
        "recipient_keys": {"ed25519": recipient.ed25519.to_base64()},
    })
}

/// `payload` encrypted with `session` for `recipient`: the to-device `m.room.encrypted`
/// content. The session advances; it must be saved before the content is sent.
pub fn encrypt(
    session: &mut Session,
    sender: &Sender<'_>,
    recipient: &Recipient,
    payload: &Value,
) -> Result<Map<String, Value>, ShareError> {
    let message = session.encrypt(payload.to_string()).map_err(|e| ShareError(e.to_string()))?;
    let message = serde_json::to_value(message).map_err(|e| ShareError(e.to_string()))?;
    Ok(object(json!({
        "algorithm": OLM_ALGORITHM,
        "sender_key": sender.curve25519,
        "ciphertext": {recipient.curve25519.to_base64(): message},
    })))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use ruma::owned_user_id;
    use vodozemac::olm::{Account, OlmMessage, SessionConfig};

    use super::*;
    use crate::crypto::GhostAccount;

    #[test]
    fn the_recipient_opens_the_room_key_with_its_one_time_key_and_sees_both_ends_named() {
        let mut ghost = GhostAccount::new();
        let device = GhostDevice { user: owned_user_id!("@_dm3_alice.eth:hs"), device: "DM3A".into() };
        let mut bob = Account::new();
        bob.generate_one_time_keys(1);
        let one_time = *bob.one_time_keys().values().next().unwrap();
        let recipient = Recipient {
            user: owned_user_id!("@bob:hs"),
            device: "PHONE".into(),
            curve25519: bob.curve25519_key(),
            ed25519: bob.ed25519_key(),
        };
        let identity = ghost.identity_keys();
        let sender = Sender {
            device: &device,
            curve25519: identity.curve25519.to_base64(),
            ed25519: identity.ed25519.to_base64(),
        };
        let mut session = ghost
            .olm()
            .create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), one_time)
            .unwrap();
        let room_key = object(json!({"algorithm": "m.megolm.v1.aes-sha2", "room_id": "!r:hs"}));
        let payload = room_key_payload(&sender, &recipient, &room_key);
        let content = encrypt(&mut session, &sender, &recipient, &payload).unwrap();
        assert_eq!(content["sender_key"], identity.curve25519.to_base64());
        let message: OlmMessage =
            serde_json::from_value(content["ciphertext"][bob.curve25519_key().to_base64()].clone()).unwrap();
        let OlmMessage::PreKey(pre_key) = message else { panic!("a first message opens the session") };
        let opened =
            bob.create_inbound_session(SessionConfig::version_1(), identity.curve25519, &pre_key).unwrap();
        let opened: Value = serde_json::from_slice(&opened.plaintext).unwrap();
        assert_eq!(opened["recipient_keys"]["ed25519"], bob.ed25519_key().to_base64());
        assert_eq!(opened["sender"], "@_dm3_alice.eth:hs");
        assert_eq!(opened["content"]["room_id"], "!r:hs");
    }
}
