//! A device of a Matrix user written with vodozemac alone, not matrix-sdk: what a test needs to
//! send a ghost's device room keys over Olm exactly as it chooses (a key held back, one from a
//! device the homeserver never listed, a payload naming another recipient), which a real
//! client would never send.
//!
//! It finds the ghost's device and its keys as any client does (`/keys/query`), claims one of
//! its signed one-time keys (`/keys/claim`) and opens an Olm session on it.

use serde_json::{Value, json};
use vodozemac::Curve25519PublicKey;
use vodozemac::megolm::GroupSession;
use vodozemac::olm::{Account, Session, SessionConfig};

use crate::synapse::MatrixUser;

/// `owner`'s device with an Olm session to a ghost's device.
pub struct OlmDevice {
    pub account: Account,
    pub session: Session,
    pub ghost: String,
    /// The ghost's device id, and its Curve25519 and Ed25519 keys as `/keys/query` gave them.
    pub ghost_device: String,
    pub ghost_curve: String,
    pub ghost_ed: String,
}

impl OlmDevice {
    /// A new device (`account`), in session with `ghost`'s first device, as `owner` finds it.
    pub async fn open(owner: &MatrixUser, ghost: &str, account: Account) -> Self {
        let post = |path: &'static str, body: Value| owner.call(reqwest::Method::POST, path, Some(body));
        let query = post("/_matrix/client/v3/keys/query", json!({"device_keys": {ghost: []}})).await.unwrap();
        let (device, object) = query["device_keys"][ghost].as_object().unwrap().iter().next().unwrap();
        let ghost_curve = object["keys"][format!("curve25519:{device}")].as_str().unwrap().to_owned();
        let ghost_ed = object["keys"][format!("ed25519:{device}")].as_str().unwrap().to_owned();
        let claim = post(
            "/_matrix/client/v3/keys/claim",
            json!({"one_time_keys": {ghost: {device.as_str(): "signed_curve25519"}}}),
        )
        .await
        .unwrap();
        let one_time =
            claim["one_time_keys"][ghost][device].as_object().unwrap().values().next().unwrap()["key"]
                .as_str()
                .unwrap()
                .to_owned();
        let session = account
            .create_outbound_session(
                SessionConfig::version_1(),
                Curve25519PublicKey::from_base64(&ghost_curve).unwrap(),
                Curve25519PublicKey::from_base64(&one_time).unwrap(),
            )
            .unwrap();
        Self {
            account,
            session,
            ghost: ghost.to_owned(),
            ghost_device: device.clone(),
            ghost_curve,
            ghost_ed,
        }
    }

    /// The `m.room_key` payload `sender` would send the ghost for `megolm`'s key `session_key`
    /// in `room_id`, claiming this device's Ed25519 key.
    pub fn room_key(&self, sender: &str, room_id: &str, megolm: &GroupSession, session_key: &str) -> Value {
        json!({
            "type": "m.room_key", "sender": sender, "recipient": self.ghost,
            "recipient_keys": {"ed25519": self.ghost_ed},
            "keys": {"ed25519": self.account.ed25519_key().to_base64()},
            "content": {
                "algorithm": "m.megolm.v1.aes-sha2", "room_id": room_id,
                "session_id": megolm.session_id(), "session_key": session_key,
            },
        })
    }

    /// The `m.room.encrypted` to-device content carrying `payload` over the Olm session.
    pub fn encrypt(&mut self, payload: &Value) -> Value {
        json!({
            "algorithm": "m.olm.v1.curve25519-aes-sha2",
            "sender_key": self.account.curve25519_key().to_base64(),
            "ciphertext": {self.ghost_curve.as_str(): self.session.encrypt(payload.to_string()).unwrap()},
        })
    }
}
