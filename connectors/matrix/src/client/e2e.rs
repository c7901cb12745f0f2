//! The calls a ghost's device makes to send into an encrypted room: the room's state (who is
//! in it, how it rotates), its members' device keys (`/keys/query`), one-time keys to open Olm
//! sessions (`/keys/claim`), room keys over Olm (`/sendToDevice`), and the encrypted event.
//!
//! All of them act as the ghost's device (`?user_id=…&device_id=…`): a to-device message must
//! come from the device whose keys encrypted it, and an event sent as a device keeps its
//! transaction id across the homeserver's restarts (Synapse keys its dedup on the device).
//! Answers are read as loose JSON and checked by the caller ([`crate::crypto::recipients`]):
//! a homeserver relays other users' keys, which are believed only once their signatures are.

use std::collections::BTreeMap;

use ruma::api::AppserviceUserIdentity;
use ruma::api::client::keys::{claim_keys, get_keys};
use ruma::api::client::message::send_message_event;
use ruma::api::client::state::get_state_events;
use ruma::api::client::to_device::send_event_to_device;
use ruma::events::{AnyStateEvent, MessageLikeEventType, ToDeviceEventType};
use ruma::serde::Raw;
use ruma::to_device::DeviceIdOrAllDevices;
use ruma::{
    DeviceId, OneTimeKeyAlgorithm, OwnedDeviceId, OwnedEventId, OwnedTransactionId, OwnedUserId, RoomId,
    TransactionId, UserId,
};
use serde_json::{Map, Value};

use super::{Client, ClientError, millis};

/// Device keys as the homeserver relayed them: user → device → the signed object.
pub type DeviceKeysByUser = BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, Map<String, Value>>>;

/// What `/keys/query` answered: device keys, and each user's master and self-signing keys as
/// published (user → the signed object).
#[derive(Debug, Clone, Default)]
pub struct QueriedKeys {
    pub devices: DeviceKeysByUser,
    pub master_keys: BTreeMap<OwnedUserId, Map<String, Value>>,
    pub self_signing_keys: BTreeMap<OwnedUserId, Map<String, Value>>,
}

/// Claimed one-time keys: user → device → (key id, the signed key object).
pub type ClaimedKeys = BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, (String, Map<String, Value>)>>;

/// A ghost and one of its devices, as which a call is made.
pub type AsDevice<'a> = (&'a UserId, &'a DeviceId);

fn as_device<'a>((user, device): AsDevice<'a>) -> AppserviceUserIdentity<'a> {
    let mut identity = AppserviceUserIdentity::new(user);
    identity.device_id = Some(device);
    identity
}

fn loose<T>(raw: &Raw<T>) -> Option<Map<String, Value>> {
    serde_json::from_str(raw.json().get()).ok()
}

impl Client {
    /// `room`'s full current state, as `device`'s ghost sees it.
    pub async fn room_state(
        &self,
        device: AsDevice<'_>,
        room: &RoomId,
    ) -> Result<Vec<Raw<AnyStateEvent>>, ClientError> {
        let request = get_state_events::v3::Request::new(room.to_owned());
        self.call_as(request, as_device(device)).await.map(|r| r.room_state)
    }

    /// Every device key of `users` (`/keys/query`), unchecked; users the homeserver could not
    /// answer for are missing.
    pub async fn query_device_keys(
        &self,
        device: AsDevice<'_>,
        users: &[OwnedUserId],
    ) -> Result<DeviceKeysByUser, ClientError> {
        Ok(self.query_keys(device, users).await?.devices)
    }

    /// The device keys of `users` and their published cross-signing keys (`/keys/query`),
    /// unchecked.
    pub async fn query_keys(
        &self,
        device: AsDevice<'_>,
        users: &[OwnedUserId],
    ) -> Result<QueriedKeys, ClientError> {
        let mut request = get_keys::v3::Request::new();
        request.device_keys = users.iter().map(|user| (user.clone(), Vec::new())).collect();
        let response = self.call_as(request, as_device(device)).await?;
        let objects = |keys: BTreeMap<OwnedUserId, Raw<_>>| -> BTreeMap<OwnedUserId, Map<String, Value>> {
            keys.into_iter().filter_map(|(user, raw)| Some((user, loose(&raw)?))).collect()
        };
        Ok(QueriedKeys {
            devices: response
                .device_keys
                .into_iter()
                .map(|(user, devices)| {
                    let devices =
                        devices.into_iter().filter_map(|(id, raw)| Some((id, loose(&raw)?))).collect();
                    (user, devices)
                })
                .collect(),
            master_keys: objects(response.master_keys),
            self_signing_keys: objects(response.self_signing_keys),
        })
    }

    /// Claims one `signed_curve25519` key of each of `wanted`'s devices (`/keys/claim`),
    /// unchecked; devices that have none left are missing.
    pub async fn claim_one_time_keys(
        &self,
        device: AsDevice<'_>,
        wanted: &BTreeMap<OwnedUserId, Vec<OwnedDeviceId>>,
    ) -> Result<ClaimedKeys, ClientError> {
        let request = claim_keys::v3::Request::new(
            wanted
                .iter()
                .map(|(user, devices)| {
                    let devices =
                        devices.iter().map(|d| (d.clone(), OneTimeKeyAlgorithm::SignedCurve25519)).collect();
                    (user.clone(), devices)
                })
                .collect(),
        );
        let response = self.call_as(request, as_device(device)).await?;
        Ok(response
            .one_time_keys
            .into_iter()
            .map(|(user, devices)| {
                let devices = devices
                    .into_iter()
                    .filter_map(|(id, keys)| {
                        let (key_id, raw) = keys.into_iter().next()?;
                        Some((id, (key_id.to_string(), loose(&raw)?)))
                    })
                    .collect();
                (user, devices)
            })
            .collect())
    }

    /// Sends `messages` (`{user: {device: content}}`) of `event_type` from `device`, idempotent
    /// by `txn_id`.
    pub async fn send_to_device(
        &self,
        device: AsDevice<'_>,
        event_type: &str,
        txn_id: &TransactionId,
        messages: &Map<String, Value>,
    ) -> Result<(), ClientError> {
        let mut body: send_event_to_device::v3::Messages = BTreeMap::new();
        for (user, devices) in messages {
            let user =
                OwnedUserId::try_from(user.as_str()).map_err(|e| ClientError::Request(e.to_string()))?;
            let Some(devices) = devices.as_object() else { continue };
            let entry = body.entry(user).or_default();
            for (id, content) in devices {
                let raw = serde_json::value::to_raw_value(content)
                    .map_err(|e| ClientError::Request(e.to_string()))?;
                entry.insert(
                    DeviceIdOrAllDevices::DeviceId(OwnedDeviceId::from(id.as_str())),
                    Raw::from_json(raw),
                );
            }
        }
        let request = send_event_to_device::v3::Request::new_raw(
            ToDeviceEventType::from(event_type),
            OwnedTransactionId::from(txn_id),
            body,
        );
        self.call_as(request, as_device(device)).await.map(|_| ())
    }

    /// Sends an `m.room.encrypted` event with `content` from `device`, idempotent by `txn_id`,
    /// stamped `timestamp_ms`.
    pub async fn send_encrypted(
        &self,
        device: AsDevice<'_>,
        room: &RoomId,
        txn_id: &TransactionId,
        timestamp_ms: Option<u64>,
        content: &Map<String, Value>,
    ) -> Result<OwnedEventId, ClientError> {
        let body =
            serde_json::value::to_raw_value(content).map_err(|e| ClientError::Request(e.to_string()))?;
        let mut request = send_message_event::v3::Request::new_raw(
            room.to_owned(),
            txn_id.to_owned(),
            MessageLikeEventType::RoomEncrypted,
            Raw::from_json(body),
        );
        request.timestamp = timestamp_ms.map(millis).transpose()?;
        self.call_as(request, as_device(device)).await.map(|r| r.event_id)
    }
}
