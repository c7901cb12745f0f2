//! Olm-encrypted to-device messages to a ghost device, opened, and their payload checked.
//!
//! A room key reaches a ghost device as an `m.room.encrypted` to-device event with algorithm
//! `m.olm.v1.curve25519-aes-sha2`: a ciphertext per recipient device, keyed by its Curve25519
//! key, from an Olm session between the sender's device (`sender_key`) and ours. A pre-key
//! message (type 0) may open a new session and uses up one of our one-time keys; a normal
//! message (type 1) advances an existing one. Before the payload is believed, it must name us
//! as its recipient (user and Ed25519 key) and its sender as the event's, as the spec
//! requires, or a room key could be relayed to us under someone else's name.

use serde_json::{Map, Value};
use vodozemac::Curve25519PublicKey;
use vodozemac::olm::{OlmMessage, Session, SessionConfig};

use super::account::{GhostAccount, OLM_ALGORITHM};
use super::device::GhostDevice;
use super::pickle::SecretPickle;

/// Why a to-device message could not be opened. None of these is retried: the sender's
/// client sends the key again when asked, or on its next message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OlmError {
    #[error("not an Olm message for this device: {0}")]
    NotForUs(String),
    #[error("no Olm session opens it (a replay, or a session lost)")]
    NoSession,
    #[error("the payload is not what the envelope says: {0}")]
    Forged(String),
}

/// A message opened: the payload, and the session to keep (new or advanced).
#[derive(Debug)]
pub struct Opened {
    pub sender_key: Curve25519PublicKey,
    pub payload: Map<String, Value>,
    pub session: Session,
    /// Whether a one-time key of the account was used (the account must be saved).
    pub account_changed: bool,
}

/// The sender's Curve25519 key of an Olm `m.room.encrypted` content, if it is one.
pub fn sender_key(content: &Map<String, Value>) -> Result<Curve25519PublicKey, OlmError> {
    if content.get("algorithm").and_then(Value::as_str) != Some(OLM_ALGORITHM) {
        return Err(OlmError::NotForUs("not m.olm.v1.curve25519-aes-sha2".to_owned()));
    }
    let key = content.get("sender_key").and_then(Value::as_str).unwrap_or_default();
    Curve25519PublicKey::from_base64(key).map_err(|e| OlmError::NotForUs(format!("sender_key: {e}")))
}

/// Opens `content` sent by `sender` to `device`, trying `sessions` (known with the sender's
/// key) before opening a new one from a pre-key message.
pub fn open(
    account: &mut GhostAccount,
    device: &GhostDevice,
    sender: &str,
    content: &Map<String, Value>,
    sessions: Vec<Session>,
) -> Result<Opened, OlmError> {
    let sender_key = sender_key(content)?;
    let ours = account.identity_keys();
    let ciphertext = content
        .get("ciphertext")
        .and_then(|c| c.get(ours.curve25519.to_base64()))
        .ok_or_else(|| OlmError::NotForUs("no ciphertext for this device's key".to_owned()))?;
    let message: OlmMessage =
        serde_json::from_value(ciphertext.clone()).map_err(|e| OlmError::NotForUs(e.to_string()))?;
    let (plaintext, session, account_changed) = decrypt(account, sender_key, &message, sessions)?;
    let payload: Map<String, Value> = serde_json::from_slice(&plaintext)
        .map_err(|e| OlmError::Forged(format!("not a JSON object: {e}")))?;
    let text = |key: &str| payload.get(key).and_then(Value::as_str);
    if text("sender") != Some(sender) {
        return Err(OlmError::Forged("the payload's sender is not the event's".to_owned()));
    }
    if text("recipient") != Some(device.user.as_str()) {
        return Err(OlmError::Forged("the payload names another recipient".to_owned()));
    }
    let recipient_key = payload.get("recipient_keys").and_then(|k| k.get("ed25519")).and_then(Value::as_str);
    if recipient_key != Some(ours.ed25519.to_base64().as_str()) {
        return Err(OlmError::Forged("the payload names another recipient key".to_owned()));
    }
    Ok(Opened { sender_key, payload, session, account_changed })
}

/// A session's pickle, to be sealed by the store.
pub fn pickle(session: &Session) -> Result<SecretPickle, serde_json::Error> {
    serde_json::to_vec(&session.pickle()).map(SecretPickle::from_bytes)
}

/// The session a stored pickle holds.
pub fn unpickle(pickle: &SecretPickle) -> Result<Session, serde_json::Error> {
    serde_json::from_slice::<vodozemac::olm::SessionPickle>(pickle.expose()).map(Session::from_pickle)
}

fn decrypt(
    account: &mut GhostAccount,
    sender_key: Curve25519PublicKey,
    message: &OlmMessage,
    sessions: Vec<Session>,
) -> Result<(Vec<u8>, Session, bool), OlmError> {
    let mut known = false;
    for mut session in sessions {
        // A pre-key message names its session; a normal one is tried on each.
        if let OlmMessage::PreKey(pre_key) = message
            && pre_key.session_id() != session.session_id()
        {
            continue;
        }
        known = true;
        if let Ok(plaintext) = session.decrypt(message) {
            return Ok((plaintext, session, false));
        }
    }
    // A pre-key message of a session we have, which that session does not open, was opened
    // before: made anew (on the fallback key, which stays usable) it would replace the session
    // with its start and open what it carried twice.
    let OlmMessage::PreKey(pre_key) = message else { return Err(OlmError::NoSession) };
    if known {
        return Err(OlmError::NoSession);
    }
    let created = account
        .olm()
        .create_inbound_session(SessionConfig::version_1(), sender_key, pre_key)
        .map_err(|_| OlmError::NoSession)?;
    Ok((created.plaintext, created.session, true))
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use ruma::{OwnedDeviceId, owned_user_id};
    use serde_json::json;
    use vodozemac::olm::Account;

    use super::*;

    pub(crate) fn ghost() -> (GhostAccount, GhostDevice) {
        let mut account = GhostAccount::new();
        account.top_up(0, false);
        let device =
            GhostDevice { user: owned_user_id!("@_dm3_alice.eth:hs"), device: OwnedDeviceId::from("DM3A") };
        (account, device)
    }

    /// bob's device (vodozemac), encrypting `payload` to the ghost's first one-time key.
    pub(crate) fn to_ghost(
        bob: &Account,
        ghost: &GhostAccount,
        payload: &Value,
    ) -> (Map<String, Value>, Session) {
        let one_time = ghost_one_time_key(ghost);
        let curve = ghost.identity_keys().curve25519;
        let mut session = bob.create_outbound_session(SessionConfig::version_1(), curve, one_time).unwrap();
        (content(bob, ghost, &mut session, payload), session)
    }

    fn ghost_one_time_key(ghost: &GhostAccount) -> Curve25519PublicKey {
        let keys =
            ghost.upload(&GhostDevice { user: owned_user_id!("@x:hs"), device: "X".into() }, false).unwrap();
        Curve25519PublicKey::from_base64(keys.one_time_keys.values().next().unwrap()["key"].as_str().unwrap())
            .unwrap()
    }

    pub(crate) fn content(
        bob: &Account,
        ghost: &GhostAccount,
        session: &mut Session,
        payload: &Value,
    ) -> Map<String, Value> {
        let message = session.encrypt(payload.to_string()).unwrap();
        json!({
            "algorithm": OLM_ALGORITHM,
            "sender_key": bob.curve25519_key().to_base64(),
            "ciphertext": {ghost.identity_keys().curve25519.to_base64(): message},
        })
        .as_object()
        .unwrap()
        .clone()
    }

    pub(crate) fn payload(ghost: &GhostAccount, sender: &str, recipient: &str) -> Value {
        json!({
            "type": "m.room_key", "content": {}, "sender": sender, "recipient": recipient,
            "recipient_keys": {"ed25519": ghost.identity_keys().ed25519.to_base64()},
            "keys": {"ed25519": "bobs-ed25519"},
        })
    }

    #[test]
    fn a_pre_key_message_opens_a_session_which_opens_the_next_message_and_a_replay_nothing() {
        let (mut account, device) = ghost();
        let bob = Account::new();
        let payload = payload(&account, "@bob:hs", device.user.as_str());
        let (first, mut bob_session) = to_ghost(&bob, &account, &payload);
        let opened = open(&mut account, &device, "@bob:hs", &first, Vec::new()).unwrap();
        assert!(opened.account_changed, "a one-time key was used");
        assert_eq!(opened.payload["type"], "m.room_key");
        let stored = || Session::from_pickle(opened.session.pickle());
        let replay = open(&mut account, &device, "@bob:hs", &first, vec![stored()]);
        assert_eq!(replay.unwrap_err(), OlmError::NoSession, "a replay opens nothing");
        // bob has not heard back, so his next message is a pre-key message of the same session.
        let second = content(&bob, &account, &mut bob_session, &payload);
        let next = open(&mut account, &device, "@bob:hs", &second, vec![stored()]).unwrap();
        assert!(!next.account_changed, "the stored session opened it");
    }

    #[test]
    fn a_pre_key_message_on_the_fallback_key_opens_once_and_its_replay_nothing() {
        // The fallback key stays usable after a session was made on it, so only the session
        // already kept tells a replay (a catch-up bringing again what the push brought).
        let (mut account, device) = ghost();
        let fallback = account.upload(&device, false).unwrap().fallback_keys.values().next().unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let fallback = Curve25519PublicKey::from_base64(&fallback).unwrap();
        let bob = Account::new();
        let curve = account.identity_keys().curve25519;
        let mut session = bob.create_outbound_session(SessionConfig::version_1(), curve, fallback).unwrap();
        let first =
            content(&bob, &account, &mut session, &payload(&account, "@bob:hs", device.user.as_str()));
        let opened = open(&mut account, &device, "@bob:hs", &first, Vec::new()).unwrap();
        let kept = Session::from_pickle(opened.session.pickle());
        let replay = open(&mut account, &device, "@bob:hs", &first, vec![kept]);
        assert_eq!(replay.unwrap_err(), OlmError::NoSession, "a replay on the fallback key opens nothing");
    }

    #[test]
    fn a_payload_for_someone_else_or_from_someone_else_is_refused() {
        let bob = Account::new();
        for (sender, recipient) in [("@eve:hs", "@_dm3_alice.eth:hs"), ("@bob:hs", "@_dm3_carol.eth:hs")] {
            let (mut account, device) = ghost();
            let (content, _) = to_ghost(&bob, &account, &payload(&account, sender, recipient));
            let refused = open(&mut account, &device, "@bob:hs", &content, Vec::new()).unwrap_err();
            assert!(matches!(refused, OlmError::Forged(_)), "{refused:?}");
        }
        let (mut account, device) = ghost();
        let megolm = json!({"algorithm": "m.megolm.v1.aes-sha2"}).as_object().unwrap().clone();
        assert!(matches!(
            open(&mut account, &device, "@bob:hs", &megolm, Vec::new()),
            Err(OlmError::NotForUs(_))
        ));
    }
}
