//! To-device events the homeserver pushes to the bridge's ghost devices (MSC2409/MSC4203),
//! read from a transaction's bytes beside ruma's view of it.
//!
//! With `msc2409_to_device_messages_enabled`, Synapse adds `de.sorunome.msc2409.to_device` to
//! each transaction: the to-device messages for the appservice's users' devices, each with
//! `to_user_id` and `to_device_id` added. Room keys arrive this way, Olm-encrypted. The list is
//! bounded ([`MAX_TO_DEVICE_PER_TRANSACTION`] events of at most [`MAX_TO_DEVICE_BYTES`]
//! each), only events for the ghosts' namespace count, and a malformed one is skipped, never
//! a reason to refuse the transaction.

use ruma::{OwnedDeviceId, OwnedUserId, UserId};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::ghost::GhostNamespace;

/// Most to-device events one transaction may bring; more are dropped (and logged). Synapse
/// sends at most 100.
pub const MAX_TO_DEVICE_PER_TRANSACTION: usize = 100;
/// Largest to-device event read, in bytes of its content's JSON; an Olm message carrying a
/// room key is under 2 KiB.
pub const MAX_TO_DEVICE_BYTES: usize = 64 * 1024;

/// A to-device event for a ghost's device.
#[derive(Debug, Clone, PartialEq)]
pub struct ToDeviceEvent {
    pub sender: OwnedUserId,
    pub to_user: OwnedUserId,
    pub to_device: OwnedDeviceId,
    pub event_type: String,
    pub content: Map<String, Value>,
}

#[derive(Deserialize)]
struct Extensions {
    #[serde(rename = "de.sorunome.msc2409.to_device", default)]
    unstable: Option<Vec<Value>>,
    #[serde(rename = "to_device", default)]
    stable: Option<Vec<Value>>,
}

/// The to-device events for `ghosts` in a transaction's `body`.
pub fn to_device_events(body: &[u8], ghosts: &GhostNamespace) -> Vec<ToDeviceEvent> {
    let Ok(extensions) = serde_json::from_slice::<Extensions>(body) else { return Vec::new() };
    let events = extensions.stable.or(extensions.unstable).unwrap_or_default();
    if events.len() > MAX_TO_DEVICE_PER_TRANSACTION {
        tracing::warn!(
            events = events.len(),
            "a transaction brought too many to-device events; the rest are dropped"
        );
    }
    events.into_iter().take(MAX_TO_DEVICE_PER_TRANSACTION).filter_map(|event| read(event, ghosts)).collect()
}

fn read(event: Value, ghosts: &GhostNamespace) -> Option<ToDeviceEvent> {
    let to_user = UserId::parse(event.get("to_user_id")?.as_str()?).ok()?;
    ghosts.identity(&to_user).ok()?;
    read_event(event)
}

/// A to-device event with `to_user_id` and `to_device_id`, if well formed and within the bound.
pub(super) fn read_event(event: Value) -> Option<ToDeviceEvent> {
    let text = |key: &str| event.get(key).and_then(Value::as_str);
    let to_user = UserId::parse(text("to_user_id")?).ok()?;
    let content = event.get("content")?.as_object()?;
    if serde_json::to_vec(content).map_or(true, |bytes| bytes.len() > MAX_TO_DEVICE_BYTES) {
        tracing::warn!(%to_user, "a to-device event over the size bound was dropped");
        return None;
    }
    Some(ToDeviceEvent {
        sender: UserId::parse(text("sender")?).ok()?,
        to_device: OwnedDeviceId::from(text("to_device_id")?),
        event_type: text("type")?.to_owned(),
        content: content.clone(),
        to_user,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use ruma::server_name;
    use serde_json::json;

    use super::*;

    fn ghosts() -> GhostNamespace {
        GhostNamespace::new("_dm3_", server_name!("hs")).unwrap()
    }

    fn event(to: &str, content: Value) -> Value {
        json!({"type": "m.room.encrypted", "sender": "@bob:hs", "to_user_id": to, "to_device_id": "DM3A", "content": content})
    }

    #[test]
    fn only_bounded_well_formed_events_for_ghosts_are_read() {
        let body = json!({"events": [], "de.sorunome.msc2409.to_device": [
            event("@_dm3_alice.eth:hs", json!({"algorithm": "m.olm.v1.curve25519-aes-sha2"})),
            event("@bob:hs", json!({})),
            event("@_dm3_alice.eth:hs", json!("not an object")),
            event("@_dm3_alice.eth:hs", json!({"pad": "x".repeat(MAX_TO_DEVICE_BYTES)})),
            json!({"type": "m.room.encrypted"}),
        ]});
        let events = to_device_events(body.to_string().as_bytes(), &ghosts());
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].to_device.as_str(), "DM3A");
        let many: Vec<Value> =
            (0..MAX_TO_DEVICE_PER_TRANSACTION + 10).map(|_| event("@_dm3_a.eth:hs", json!({}))).collect();
        let body = json!({"to_device": many});
        assert_eq!(
            to_device_events(body.to_string().as_bytes(), &ghosts()).len(),
            MAX_TO_DEVICE_PER_TRANSACTION
        );
        assert!(to_device_events(b"[]", &ghosts()).is_empty());
    }
}
