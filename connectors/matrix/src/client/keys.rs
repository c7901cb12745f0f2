//! End-to-end key calls made as a ghost's device: the device itself (MSC4190) and its keys.
//!
//! An appservice acts as one device of a ghost by adding `device_id` beside `user_id` to the
//! identity assertion (stable in Synapse; MSC3202 named it). MSC4190 lets it create that device
//! with `PUT /devices/{deviceId}` and no login, so no access token is ever minted for a ghost.

use std::collections::BTreeMap;

use ruma::api::AppserviceUserIdentity;
use ruma::api::client::device::update_device;
use ruma::api::client::keys::upload_keys;
use ruma::serde::Raw;
use ruma::{DeviceId, OwnedOneTimeKeyId, UserId};
use serde_json::{Map, Value};

use super::{Client, ClientError};

/// The keys to publish with one `/keys/upload`, as signed JSON.
#[derive(Debug, Clone, Default)]
pub struct KeysUpload {
    /// The device keys, on the first upload of a device.
    pub device_keys: Option<Map<String, Value>>,
    /// `signed_curve25519:{id}` → signed key.
    pub one_time_keys: BTreeMap<String, Value>,
    /// `signed_curve25519:{id}` → signed key with `fallback: true`.
    pub fallback_keys: BTreeMap<String, Value>,
}

impl KeysUpload {
    /// Whether there is nothing to publish.
    pub fn is_empty(&self) -> bool {
        self.device_keys.is_none() && self.one_time_keys.is_empty() && self.fallback_keys.is_empty()
    }
}

/// The display name of every ghost device, as the ghost's Matrix contacts see it in its device
/// list.
pub const GHOST_DEVICE_NAME: &str = "DM3 bridge";

impl Client {
    /// Creates `device` for `ghost` (MSC4190), or renames it if it exists: idempotent.
    pub async fn create_device(&self, ghost: &UserId, device: &DeviceId) -> Result<(), ClientError> {
        let mut request = update_device::v3::Request::new(device.to_owned());
        request.display_name = Some(GHOST_DEVICE_NAME.to_owned());
        self.call(request, Some(ghost)).await.map(|_| ())
    }

    /// Publishes `upload` as `ghost`'s `device`; answers the homeserver's count of the device's
    /// unclaimed one-time keys of `algorithm`.
    pub async fn upload_keys(
        &self,
        ghost: &UserId,
        device: &DeviceId,
        upload: &KeysUpload,
        algorithm: &str,
    ) -> Result<u64, ClientError> {
        let mut request = upload_keys::v3::Request::new();
        if let Some(keys) = &upload.device_keys {
            request.device_keys = Some(raw(&Value::Object(keys.clone()))?);
        }
        request.one_time_keys = raw_keys(&upload.one_time_keys)?;
        request.fallback_keys = raw_keys(&upload.fallback_keys)?;
        let mut identity = AppserviceUserIdentity::new(ghost);
        identity.device_id = Some(device);
        let response = self.call_as(request, identity).await?;
        Ok(response
            .one_time_key_counts
            .iter()
            .find(|(name, _)| name.as_str() == algorithm)
            .map(|(_, count)| u64::from(*count))
            .unwrap_or(0))
    }
}

fn raw<T>(value: &Value) -> Result<Raw<T>, ClientError> {
    serde_json::value::to_raw_value(value)
        .map(Raw::from_json)
        .map_err(|e| ClientError::Request(e.to_string()))
}

fn raw_keys<T>(keys: &BTreeMap<String, Value>) -> Result<BTreeMap<OwnedOneTimeKeyId, Raw<T>>, ClientError> {
    keys.iter()
        .map(|(id, key)| {
            let id =
                OwnedOneTimeKeyId::try_from(id.as_str()).map_err(|e| ClientError::Request(e.to_string()))?;
            Ok((id, raw(key)?))
        })
        .collect()
}
