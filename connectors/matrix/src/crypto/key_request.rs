//! Asking for a room key that did not come (`m.room_key_request`), as the ghost's device.
//!
//! An event whose key is missing is held by the engine and tried again; after the first miss
//! the ghost's device asks the sender's devices for the key. A client shares a key again only
//! with a device it shared the session with before (matrix-sdk: `OutboundSessionNotShared`
//! otherwise), so this repairs a key that was sent but lost on the way or in the bridge, not
//! one the client never meant for the ghost. The answer is an `m.forwarded_room_key` over Olm,
//! kept like a room key if the device that made the session sent it ([`super::megolm`]).
//!
//! The request id is derived from the device, the session and the event held for it: the job
//! of one event run again asks in the same request and the same homeserver transaction (which
//! the homeserver delivers once), and each event held asks anew (a key forwarded and lost
//! again, or asked for while the sender's client was offline, is asked for again).

use ruma::{OwnedTransactionId, UserId};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::account::MEGOLM_ALGORITHM;
use super::devices::{DeviceError, GhostDevices};

impl GhostDevices {
    /// Asks every device of `sender` for the room key of the encrypted event `event_id` (whose
    /// content is `content`) in `room_id`, from `ghost`'s device. Nothing to do for a ghost without a device (it was
    /// never given a key to lose) or for content that names no Megolm session.
    pub async fn request_room_key(
        &self,
        ghost: &UserId,
        room_id: &str,
        event_id: &str,
        sender: &str,
        content: &Map<String, Value>,
    ) -> Result<(), DeviceError> {
        let text = |key: &str| content.get(key).and_then(Value::as_str);
        let Some(session_id) = text("session_id").filter(|_| text("algorithm") == Some(MEGOLM_ALGORITHM))
        else {
            return Ok(());
        };
        let Some(loaded) = self.load(ghost).await? else { return Ok(()) };
        let Ok(sender) = UserId::parse(sender) else { return Ok(()) };
        let device = &loaded.device.device;
        let request_id = request_id(device.as_str(), room_id, session_id, event_id);
        let mut body = json!({"algorithm": MEGOLM_ALGORITHM, "room_id": room_id, "session_id": session_id});
        if let Some(sender_key) = text("sender_key") {
            // Deprecated (the event names it only from older clients), and read by them.
            body["sender_key"] = json!(sender_key);
        }
        let request = json!({
            "action": "request",
            "requesting_device_id": device,
            "request_id": request_id,
            "body": body,
        });
        let Value::Object(request) = request else { return Ok(()) };
        let txn_id = OwnedTransactionId::from(format!("key-request-{request_id}"));
        self.client().send_room_key_request(ghost, device, &sender, txn_id, &request).await?;
        tracing::info!(%ghost, %room_id, %sender, session_id, "asked for a missing room key");
        Ok(())
    }
}

/// A stable id for the request of one device for one session, for one event.
fn request_id(device: &str, room_id: &str, session_id: &str, event_id: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [device, room_id, session_id, event_id] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}
