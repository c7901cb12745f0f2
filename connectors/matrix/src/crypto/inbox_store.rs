//! Where to-device messages for ghost devices wait to be opened: a trait the service implements
//! over its database, beside [`super::store::OlmStore`].
//!
//! Why they wait there rather than being opened before the transaction's 200: Synapse keeps a
//! transaction's to-device messages in memory only, and sends a transaction answered 500 again
//! without them, so an answer that says "not now" (the ghost's account held by another replica,
//! a store failure while opening) would lose the room keys they carry. Keeping them raw is one
//! insert; opening them is the work of [`super::inbox`], under the ghost's lease, in arrival
//! order per device. The catch-up ([`super::catch_up`]) brings the same messages again (Synapse
//! keeps them in its device inbox until the device syncs): a message is known by its digest,
//! so it is kept once and opened once.

use dm3_bridge_connector::BoxFuture;
use ruma::{OwnedDeviceId, UserId};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use super::store::OlmStoreError;
use super::to_device::ToDeviceEvent;

/// How a to-device message reached the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// In an application-service transaction (MSC2409).
    Push,
    /// From a `/sync` as the ghost's device.
    CatchUp,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Push => "push",
            Via::CatchUp => "catch_up",
        }
    }

    pub fn parse(text: &str) -> Self {
        if text == "catch_up" { Via::CatchUp } else { Via::Push }
    }
}

/// A to-device message to keep.
#[derive(Debug, Clone)]
pub struct InboxWrite {
    pub event: ToDeviceEvent,
    /// What the message is known by: the same message pushed and caught up has the same.
    pub digest: String,
    pub via: Via,
}

impl InboxWrite {
    pub fn new(event: ToDeviceEvent, via: Via) -> Self {
        Self { digest: digest(&event), event, via }
    }
}

/// A kept message not yet opened, in arrival order.
#[derive(Debug, Clone)]
pub struct KeptToDevice {
    /// Its place in arrival order (and its key in the store).
    pub seq: u64,
    pub event: ToDeviceEvent,
    pub via: Via,
    /// How often it was tried without opening (it waits for an earlier message of its session).
    pub attempts: u32,
    pub created_at_ms: i64,
}

/// What became of a kept message that was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unopened {
    /// Tried once more; it stays pending.
    Retry,
    /// It can never open (forged, not for this device, or its session never came): settled.
    Dropped,
}

/// The to-device messages of ghost devices, kept until opened: implemented by the service.
pub trait ToDeviceInbox: Send + Sync + 'static {
    /// Keeps `messages` unless kept before (same device and digest): how many were new.
    fn keep_to_device<'a>(&'a self, messages: Vec<InboxWrite>)
    -> BoxFuture<'a, Result<usize, OlmStoreError>>;

    /// Keeps what a catch-up of `ghost`'s `device` brought and its `next_batch`, in one
    /// transaction (the homeserver forgets what came before a since token once it is used):
    /// how many messages were new.
    fn keep_caught_up<'a>(
        &'a self,
        ghost: &'a UserId,
        device: &'a OwnedDeviceId,
        messages: Vec<InboxWrite>,
        next_batch: &'a str,
    ) -> BoxFuture<'a, Result<usize, OlmStoreError>>;

    /// The `next_batch` of `device`'s last catch-up, if it had one.
    fn since<'a>(
        &'a self,
        ghost: &'a UserId,
        device: &'a OwnedDeviceId,
    ) -> BoxFuture<'a, Result<Option<String>, OlmStoreError>>;

    /// Devices with messages pending, at most `limit`.
    fn pending_devices<'a>(
        &'a self,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(ruma::OwnedUserId, OwnedDeviceId)>, OlmStoreError>>;

    /// `device`'s pending messages in arrival order, at most `limit`.
    fn pending_to_device<'a>(
        &'a self,
        ghost: &'a UserId,
        device: &'a OwnedDeviceId,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<KeptToDevice>, OlmStoreError>>;

    /// Records what became of a pending message that did not open.
    fn settle_unopened<'a>(&'a self, seq: u64, outcome: Unopened)
    -> BoxFuture<'a, Result<(), OlmStoreError>>;
}

/// A message's digest: its recipient, sender, type and content in canonical JSON (sorted keys),
/// so the copy of a push and that of a `/sync` agree whatever order the homeserver wrote.
pub fn digest(event: &ToDeviceEvent) -> String {
    let mut hasher = Sha256::new();
    for part in [event.to_user.as_str(), event.to_device.as_str(), event.sender.as_str(), &event.event_type] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher.update(canonical(&Value::Object(event.content.clone())).as_bytes());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `value` with every object's keys sorted, as text.
fn canonical(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for key in keys {
                    out.insert(key.clone(), sorted(&map[key]));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use ruma::owned_user_id;
    use serde_json::json;

    use super::*;

    fn event(content: Value) -> ToDeviceEvent {
        ToDeviceEvent {
            sender: owned_user_id!("@bob:hs"),
            to_user: owned_user_id!("@_dm3_alice.eth:hs"),
            to_device: "DM3A".into(),
            event_type: "m.room.encrypted".to_owned(),
            content: content.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn the_same_message_in_another_key_order_has_the_same_digest_and_another_message_not() {
        let a = event(json!({"algorithm": "x", "ciphertext": {"k": {"type": 1, "body": "b"}}}));
        let b = event(json!({"ciphertext": {"k": {"body": "b", "type": 1}}, "algorithm": "x"}));
        let c = event(json!({"ciphertext": {"k": {"body": "c", "type": 1}}, "algorithm": "x"}));
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&c));
    }
}
