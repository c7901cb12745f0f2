//! `m.room_key_request` sent as a ghost's device (`PUT /sendToDevice`, with `device_id` beside
//! `user_id` in the identity assertion, as in [`super::keys`]).
//!
//! A request is not encrypted (the spec sends it in the clear: it holds no key, only the ids of
//! the session asked for); the answer, an `m.forwarded_room_key`, comes over Olm.

use std::collections::BTreeMap;

use ruma::api::AppserviceUserIdentity;
use ruma::api::client::to_device::send_event_to_device;
use ruma::events::ToDeviceEventType;
use ruma::serde::Raw;
use ruma::to_device::DeviceIdOrAllDevices;
use ruma::{DeviceId, OwnedTransactionId, UserId};
use serde_json::{Map, Value};

use super::{Client, ClientError};

impl Client {
    /// Sends `content` (an `m.room_key_request`) from `ghost`'s `device` to every device of
    /// `user`, under `txn_id` (the same request sent again is one to the homeserver).
    pub async fn send_room_key_request(
        &self,
        ghost: &UserId,
        device: &DeviceId,
        user: &UserId,
        txn_id: OwnedTransactionId,
        content: &Map<String, Value>,
    ) -> Result<(), ClientError> {
        let raw = Raw::new(content).map_err(|e| ClientError::Request(e.to_string()))?.cast_unchecked();
        let messages =
            BTreeMap::from([(user.to_owned(), BTreeMap::from([(DeviceIdOrAllDevices::AllDevices, raw)]))]);
        let request =
            send_event_to_device::v3::Request::new_raw(ToDeviceEventType::RoomKeyRequest, txn_id, messages);
        let mut identity = AppserviceUserIdentity::new(ghost);
        identity.device_id = Some(device);
        self.call_as(request, identity).await.map(|_| ())
    }
}
