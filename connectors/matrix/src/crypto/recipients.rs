//! Who receives a ghost's room key: the devices of the room's members, as their own keys vouch
//! for them.
//!
//! The members are those who may read what the ghost says next: joined, and invited unless the
//! room shows history only from the join (`history_visibility: joined`), as the spec and
//! clients do. Their devices come from `/keys/query` (kept between sends,
//! [`super::device_lists`]), relayed by the homeserver, so each device is believed only if its
//! object names the user and device it is filed under, carries both keys, and is signed by its own Ed25519 key; a device that fails is skipped and logged (it
//! cannot read the room, which is what its owner sees of a broken device anyway). A one-time
//! key from `/keys/claim` is used only if that device's key signed it, or the homeserver could
//! slip its own key in and read the room key.

use std::collections::BTreeMap;

use ruma::events::AnyStateEvent;
use ruma::serde::Raw;
use ruma::{OwnedDeviceId, OwnedUserId, UserId};
use serde_json::{Map, Value};
use vodozemac::{Curve25519PublicKey, Ed25519PublicKey, Ed25519Signature};

use super::outbound::Rotation;
use super::outbound_store::SharedWith;
use super::signing::signed_bytes;
use crate::client::DeviceKeysByUser;
use crate::room_state::RoomFacts;

/// A member's device that may receive a room key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub user: OwnedUserId,
    pub device: OwnedDeviceId,
    pub curve25519: Curve25519PublicKey,
    pub ed25519: Ed25519PublicKey,
}

impl Recipient {
    /// The device as the shared-with set records it.
    pub fn shared_with(&self) -> SharedWith {
        SharedWith {
            user: self.user.to_string(),
            device: self.device.to_string(),
            curve_key: self.curve25519.to_base64(),
        }
    }
}

/// What a room's state says about sending into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSending {
    /// Users whose devices get the room key.
    pub members: Vec<OwnedUserId>,
    pub rotation: Rotation,
}

/// The members and rotation of a room whose full state is `state`.
pub fn room_sending(state: &[Raw<AnyStateEvent>]) -> RoomSending {
    let facts = RoomFacts::from_state(state);
    let invited_read = facts.history_visibility.as_deref() != Some("joined");
    let members = facts
        .memberships
        .iter()
        .filter(|(_, membership)| *membership == "join" || (invited_read && *membership == "invite"))
        .filter_map(|(user, _)| UserId::parse(user.as_str()).ok())
        .collect();
    let rotation = state
        .iter()
        .filter_map(|raw| serde_json::from_str::<Map<String, Value>>(raw.json().get()).ok())
        .find(|event| {
            event.get("type").and_then(Value::as_str) == Some("m.room.encryption")
                && event.get("state_key").and_then(Value::as_str) == Some("")
        })
        .and_then(|event| event.get("content").and_then(Value::as_object).map(Rotation::from_content))
        .unwrap_or_default();
    RoomSending { members, rotation }
}

/// The devices of `keys` that vouch for themselves, but `except` (the sending device).
pub fn verified_devices(keys: &DeviceKeysByUser, except: (&UserId, &str)) -> Vec<Recipient> {
    keys.iter()
        .flat_map(|(user, devices)| vouched_devices(user, devices))
        .map(|(recipient, _)| recipient)
        .filter(|recipient| (recipient.user.as_ref(), recipient.device.as_str()) != except)
        .collect()
}

/// The devices of `user` that vouch for themselves, each with its signed object; the others are
/// logged and left out.
pub fn vouched_devices<'a>(
    user: &UserId,
    devices: &'a BTreeMap<OwnedDeviceId, Map<String, Value>>,
) -> Vec<(Recipient, &'a Map<String, Value>)> {
    let mut vouched = Vec::new();
    for (device, object) in devices {
        match verify_device(user, device, object) {
            Ok(recipient) => vouched.push((recipient, object)),
            Err(why) => {
                tracing::warn!(%user, %device, why, "a device's keys do not vouch for it; it gets no room key")
            }
        }
    }
    vouched
}

fn verify_device(
    user: &UserId,
    device: &OwnedDeviceId,
    object: &Map<String, Value>,
) -> Result<Recipient, &'static str> {
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    if text("user_id") != Some(user.as_str()) || text("device_id") != Some(device.as_str()) {
        return Err("the keys name another user or device");
    }
    let key = |algorithm: &str| {
        object.get("keys").and_then(|k| k.get(format!("{algorithm}:{device}"))).and_then(Value::as_str)
    };
    let ed25519 =
        key("ed25519").and_then(|k| Ed25519PublicKey::from_base64(k).ok()).ok_or("no Ed25519 key")?;
    let curve25519 = key("curve25519")
        .and_then(|k| Curve25519PublicKey::from_base64(k).ok())
        .ok_or("no Curve25519 key")?;
    if !signed_by(object, user, &format!("ed25519:{device}"), ed25519) {
        return Err("the device's own signature is missing or wrong");
    }
    Ok(Recipient { user: user.to_owned(), device: device.clone(), curve25519, ed25519 })
}

/// Whether `object` carries `user`'s valid signature by `key` under `key_id`.
pub fn signed_by(object: &Map<String, Value>, user: &UserId, key_id: &str, key: Ed25519PublicKey) -> bool {
    let Some(signature) = object
        .get("signatures")
        .and_then(|s| s.get(user.as_str()))
        .and_then(|s| s.get(key_id))
        .and_then(Value::as_str)
        .and_then(|s| Ed25519Signature::from_base64(s).ok())
    else {
        return false;
    };
    signed_bytes(object).is_ok_and(|bytes| key.verify(bytes.as_bytes(), &signature).is_ok())
}

/// The Curve25519 key of a claimed one-time key, if `recipient`'s device signed it.
pub fn one_time_key(
    recipient: &Recipient,
    key_id: &str,
    object: &Map<String, Value>,
) -> Option<Curve25519PublicKey> {
    if !key_id.starts_with("signed_curve25519:") {
        return None;
    }
    let key_signer = format!("ed25519:{}", recipient.device);
    if !signed_by(object, &recipient.user, &key_signer, recipient.ed25519) {
        tracing::warn!(user = %recipient.user, device = %recipient.device, "a claimed one-time key is not signed by its device; not used");
        return None;
    }
    object.get("key").and_then(Value::as_str).and_then(|k| Curve25519PublicKey::from_base64(k).ok())
}

/// The recipients grouped by user, for `/keys/claim`.
pub fn by_user(recipients: &[&Recipient]) -> BTreeMap<OwnedUserId, Vec<OwnedDeviceId>> {
    let mut grouped: BTreeMap<OwnedUserId, Vec<OwnedDeviceId>> = BTreeMap::new();
    for recipient in recipients {
        grouped.entry(recipient.user.clone()).or_default().push(recipient.device.clone());
    }
    grouped
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use ruma::owned_user_id;
    use serde_json::json;
    use vodozemac::olm::Account;

    use super::super::signing::{object, sign_object};
    use super::*;

    fn device_keys(account: &Account, user: &str, device: &str) -> Map<String, Value> {
        let mut keys = object(json!({
            "user_id": user, "device_id": device,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                format!("curve25519:{device}"): account.curve25519_key().to_base64(),
                format!("ed25519:{device}"): account.ed25519_key().to_base64(),
            },
        }));
        sign_object(&mut keys, user, &format!("ed25519:{device}"), |m| account.sign(m)).unwrap();
        keys
    }

    #[test]
    fn only_devices_that_vouch_for_themselves_receive_keys() {
        let (phone, laptop, eve) = (Account::new(), Account::new(), Account::new());
        let bob = owned_user_id!("@bob:hs");
        let mut forged = device_keys(&laptop, "@bob:hs", "LAPTOP");
        forged["keys"]["curve25519:LAPTOP"] = json!(eve.curve25519_key().to_base64());
        let mislabelled = device_keys(&eve, "@bob:hs", "ELSE");
        let keys: DeviceKeysByUser = BTreeMap::from([(
            bob.clone(),
            BTreeMap::from([
                (OwnedDeviceId::from("PHONE"), device_keys(&phone, "@bob:hs", "PHONE")),
                (OwnedDeviceId::from("LAPTOP"), forged),
                (OwnedDeviceId::from("TABLET"), mislabelled),
                (OwnedDeviceId::from("DM3SELF"), device_keys(&eve, "@bob:hs", "DM3SELF")),
            ]),
        )]);
        let devices = verified_devices(&keys, (&bob, "DM3SELF"));
        assert_eq!(devices.len(), 1, "{devices:?}");
        assert_eq!(devices[0].device.as_str(), "PHONE");
        assert_eq!(devices[0].curve25519, phone.curve25519_key());
    }

    #[test]
    fn a_one_time_key_is_used_only_if_its_device_signed_it() {
        let mut phone = Account::new();
        phone.generate_one_time_keys(1);
        let (id, key) = phone.one_time_keys().into_iter().next().unwrap();
        let recipient = Recipient {
            user: owned_user_id!("@bob:hs"),
            device: "PHONE".into(),
            curve25519: phone.curve25519_key(),
            ed25519: phone.ed25519_key(),
        };
        let mut signed = object(json!({"key": key.to_base64()}));
        sign_object(&mut signed, "@bob:hs", "ed25519:PHONE", |m| phone.sign(m)).unwrap();
        let key_id = format!("signed_curve25519:{}", id.to_base64());
        assert_eq!(one_time_key(&recipient, &key_id, &signed), Some(key));
        let mut swapped = signed.clone();
        swapped["key"] = json!(Account::new().curve25519_key().to_base64());
        assert_eq!(one_time_key(&recipient, &key_id, &swapped), None);
        assert_eq!(one_time_key(&recipient, "curve25519:x", &signed), None);
    }

    #[test]
    fn invited_members_read_unless_history_is_from_the_join() {
        let state = |visibility: &str| -> Vec<Raw<AnyStateEvent>> {
            [
                json!({"type": "m.room.member", "state_key": "@bob:hs", "content": {"membership": "join"}}),
                json!({"type": "m.room.member", "state_key": "@carol:hs", "content": {"membership": "invite"}}),
                json!({"type": "m.room.member", "state_key": "@dan:hs", "content": {"membership": "leave"}}),
                json!({"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": visibility}}),
                json!({"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_msgs": 3}}),
            ]
            .iter()
            .map(|e| Raw::from_json(serde_json::value::to_raw_value(e).unwrap()))
            .collect()
        };
        let shared = room_sending(&state("shared"));
        assert_eq!(shared.members.len(), 2);
        assert_eq!(shared.rotation.period_msgs, 3);
        assert_eq!(room_sending(&state("joined")).members, vec![owned_user_id!("@bob:hs")]);
    }
}
