//! A ghost's outbound Megolm session in one room: the events it encrypts, and when it must be
//! replaced.
//!
//! The room's `m.room.encryption` says how long a session may live (`rotation_period_ms`,
//! default a week) and how many events it may encrypt (`rotation_period_msgs`, default 100);
//! the values are bounded as Element and matrix-sdk-crypto bound them (an hour to a week, 1 to
//! 10,000), so a room cannot make the bridge keep one session forever nor make one per event
//! forever. A session is also replaced when a device it was shared with is gone (its user left,
//! the device was deleted, or it came back with other keys): a key shared with a device that
//! left must not decrypt what is said after ([`super::share`] decides that).
//!
//! The encrypted content follows the spec: `algorithm`, `sender_key`, `device_id`,
//! `session_id`, `ciphertext`, and the event's `m.relates_to` copied into the clear part so the
//! homeserver can aggregate reactions, edits and threads (it stays inside the ciphertext too,
//! as clients do).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use vodozemac::megolm::{GroupSession, GroupSessionPickle, SessionConfig};

use super::account::MEGOLM_ALGORITHM;
use super::outbound_store::{OutboundWrite, SharedWith, StoredOutbound};
use super::pickle::SecretPickle;

/// The spec's defaults for a room that says nothing.
pub const DEFAULT_ROTATION_MS: u64 = 7 * 24 * 60 * 60 * 1000;
pub const DEFAULT_ROTATION_MSGS: u64 = 100;
/// Bounds on what a room may ask.
const MIN_ROTATION_MS: u64 = 60 * 60 * 1000;
const MAX_ROTATION_MSGS: u64 = 10_000;

/// When a room's sessions are replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub period_ms: u64,
    pub period_msgs: u64,
}

impl Default for Rotation {
    fn default() -> Self {
        Self { period_ms: DEFAULT_ROTATION_MS, period_msgs: DEFAULT_ROTATION_MSGS }
    }
}

impl Rotation {
    /// The rotation a room's `m.room.encryption` content asks for, bounded.
    pub fn from_content(content: &Map<String, Value>) -> Self {
        let number = |key: &str| content.get(key).and_then(Value::as_u64);
        Self {
            period_ms: number("rotation_period_ms")
                .unwrap_or(DEFAULT_ROTATION_MS)
                .clamp(MIN_ROTATION_MS, DEFAULT_ROTATION_MS),
            period_msgs: number("rotation_period_msgs")
                .unwrap_or(DEFAULT_ROTATION_MSGS)
                .clamp(1, MAX_ROTATION_MSGS),
        }
    }
}

/// Why an outbound session could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("the stored outbound Megolm session cannot be read: {0}")]
    Unpickle(String),
    #[error("the outbound Megolm session cannot be pickled: {0}")]
    Pickle(String),
}

/// A ghost's outbound session in a room.
pub struct OutboundSession {
    session: GroupSession,
    pub created_ms: u64,
    pub messages: u64,
    /// Devices it was shared with.
    pub shared: BTreeSet<SharedWith>,
    /// Whether it was made here, not read.
    pub is_new: bool,
}

impl std::fmt::Debug for OutboundSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The session key never prints.
        f.debug_struct("OutboundSession")
            .field("session_id", &self.session.session_id())
            .field("messages", &self.messages)
            .finish_non_exhaustive()
    }
}

impl OutboundSession {
    /// A fresh session, shared with nobody yet.
    pub fn new(now_ms: u64) -> Self {
        Self {
            session: GroupSession::new(SessionConfig::version_1()),
            created_ms: now_ms,
            messages: 0,
            shared: BTreeSet::new(),
            is_new: true,
        }
    }

    /// The session as stored.
    pub fn from_stored(stored: StoredOutbound) -> Result<Self, OutboundError> {
        let pickle: GroupSessionPickle = serde_json::from_slice(stored.pickle.expose())
            .map_err(|e| OutboundError::Unpickle(e.to_string()))?;
        Ok(Self {
            session: GroupSession::from_pickle(pickle),
            created_ms: stored.created_ms,
            messages: stored.messages,
            shared: stored.shared.into_iter().collect(),
            is_new: false,
        })
    }

    /// What to store of it.
    pub fn write(&self) -> Result<OutboundWrite, OutboundError> {
        let pickle = serde_json::to_vec(&self.session.pickle())
            .map(SecretPickle::from_bytes)
            .map_err(|e| OutboundError::Pickle(e.to_string()))?;
        Ok(OutboundWrite {
            session_id: self.session_id(),
            pickle,
            created_ms: self.created_ms,
            messages: self.messages,
        })
    }

    pub fn session_id(&self) -> String {
        self.session.session_id()
    }

    /// Whether the session has lived or encrypted as much as `rotation` allows.
    pub fn is_spent(&self, rotation: Rotation, now_ms: u64) -> bool {
        self.messages >= rotation.period_msgs || now_ms.saturating_sub(self.created_ms) >= rotation.period_ms
    }

    /// The `m.room_key` content that lets a device decrypt what this session encrypts from now
    /// on (the key at its current index: a device added later does not read earlier events).
    pub fn room_key(&self, room_id: &str) -> Map<String, Value> {
        object(json!({
            "algorithm": MEGOLM_ALGORITHM,
            "room_id": room_id,
            "session_id": self.session_id(),
            "session_key": self.session.session_key().to_base64(),
        }))
    }

    /// Encrypts an event of `event_type` with `content` for `room_id`: the `m.room.encrypted`
    /// content, sent by the device `device_id` whose Curve25519 key is `sender_key`.
    pub fn encrypt(
        &mut self,
        room_id: &str,
        event_type: &str,
        content: &Map<String, Value>,
        sender_key: &str,
        device_id: &str,
    ) -> Map<String, Value> {
        let plaintext = json!({"type": event_type, "content": content, "room_id": room_id});
        let ciphertext = self.session.encrypt(plaintext.to_string()).to_base64();
        self.messages = self.messages.saturating_add(1);
        let mut encrypted = object(json!({
            "algorithm": MEGOLM_ALGORITHM,
            "sender_key": sender_key,
            "device_id": device_id,
            "session_id": self.session_id(),
            "ciphertext": ciphertext,
        }));
        if let Some(relation) = content.get("m.relates_to") {
            encrypted.insert("m.relates_to".to_owned(), relation.clone());
        }
        encrypted
    }
}

fn object(value: Value) -> Map<String, Value> {
    super::signing::object(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::super::megolm::{decrypt, envelope, room_key};
    use super::*;

    #[test]
    fn what_it_encrypts_decrypts_with_the_room_key_it_gives_and_relations_stay_in_the_clear() {
        let mut session = OutboundSession::new(0);
        let mut key = room_key(&session.room_key("!r:hs")).unwrap();
        let content = object(json!({
            "msgtype": "m.text", "body": "secret words",
            "m.relates_to": {"m.in_reply_to": {"event_id": "$x"}},
        }));
        let encrypted = session.encrypt("!r:hs", "m.room.message", &content, "curve", "DM3DEV");
        assert!(!Value::Object(encrypted.clone()).to_string().contains("secret words"));
        assert_eq!(encrypted["m.relates_to"]["m.in_reply_to"]["event_id"], "$x");
        assert_eq!(encrypted["device_id"], "DM3DEV");
        let event = decrypt(&mut key.session, "!r:hs", &envelope(&encrypted).unwrap()).unwrap();
        assert_eq!(event["content"]["body"], "secret words");
        assert_eq!(session.messages, 1);
    }

    #[test]
    fn a_stored_session_goes_on_where_it_stopped() {
        let mut session = OutboundSession::new(5);
        let mut key = room_key(&session.room_key("!r:hs")).unwrap();
        session.encrypt("!r:hs", "m.room.message", &Map::new(), "k", "D");
        let write = session.write().unwrap();
        let stored = StoredOutbound {
            session_id: write.session_id.clone(),
            pickle: write.pickle,
            created_ms: 5,
            messages: write.messages,
            shared: Vec::new(),
        };
        let mut again = OutboundSession::from_stored(stored).unwrap();
        assert_eq!(again.session_id(), session.session_id());
        let next = again.encrypt("!r:hs", "m.room.message", &object(json!({"body": "2"})), "k", "D");
        let event = decrypt(&mut key.session, "!r:hs", &envelope(&next).unwrap()).unwrap();
        assert_eq!(event["content"]["body"], "2");
        assert!(!format!("{again:?}").contains(&again.room_key("!r:hs")["session_key"].to_string()));
    }

    #[test]
    fn rotation_follows_the_room_within_bounds() {
        let rotation =
            Rotation::from_content(&object(json!({"rotation_period_msgs": 2, "rotation_period_ms": 1})));
        assert_eq!(rotation, Rotation { period_ms: MIN_ROTATION_MS, period_msgs: 2 });
        assert_eq!(Rotation::from_content(&Map::new()), Rotation::default());
        let huge = Rotation::from_content(&object(json!({"rotation_period_msgs": u64::MAX})));
        assert_eq!(huge.period_msgs, MAX_ROTATION_MSGS);
        let mut session = OutboundSession::new(0);
        assert!(!session.is_spent(rotation, 1));
        session.messages = 2;
        assert!(session.is_spent(rotation, 1));
        assert!(OutboundSession::new(0).is_spent(rotation, MIN_ROTATION_MS));
    }
}
