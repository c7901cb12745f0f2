//! End-to-end key calls made as a ghost's device: the device itself (MSC4190) and its keys.
//!
//! An appservice acts as one device of a ghost by adding `device_id` beside `user_id` to the
//! identity assertion (stable in Synapse; MSC3202 named it). MSC4190 lets it create that device
//! with `PUT /devices/{deviceId}` and no login, so no access token is ever minted for a ghost.

use std::collections::BTreeMap;

use ruma::api::AppserviceUserIdentity;
use ruma::api::client::device::update_device;
use ruma::api::client::keys::{upload_keys, upload_signatures, upload_signing_keys};
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

impl Client {
    /// Publishes `ghost`'s master and self-signing keys (`/keys/device_signing/upload`). The
    /// first set needs no user-interactive auth (MSC3967), and an appservice may replace its
    /// users' set (MSC4190).
    pub async fn upload_signing_keys(
        &self,
        ghost: &UserId,
        master: &Map<String, Value>,
        self_signing: &Map<String, Value>,
    ) -> Result<(), ClientError> {
        let mut request = upload_signing_keys::v3::Request::new();
        request.master_key = Some(raw(&Value::Object(master.clone()))?);
        request.self_signing_key = Some(raw(&Value::Object(self_signing.clone()))?);
        self.call(request, Some(ghost)).await.map(|_| ())
    }

    /// Publishes `device_keys` of `ghost`'s `device` with the signature its self-signing key
    /// added (`/keys/signatures/upload`); a signature the homeserver refuses is an error.
    pub async fn upload_device_signature(
        &self,
        ghost: &UserId,
        device: &DeviceId,
        device_keys: &Map<String, Value>,
    ) -> Result<(), ClientError> {
        let mut keys = upload_signatures::v3::SignedKeys::new();
        keys.add_device_keys(device.to_owned(), raw(&Value::Object(device_keys.clone()))?);
        let request = upload_signatures::v3::Request::new(BTreeMap::from([(ghost.to_owned(), keys)]));
        let response = self.call(request, Some(ghost)).await?;
        match response.failures.values().flat_map(|f| f.values()).next() {
            None => Ok(()),
            // The failure's fields are private in ruma; its JSON names them.
            Some(failure) => {
                let failure = serde_json::to_value(failure).unwrap_or_default();
                let field =
                    |key: &str| failure.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
                Err(ClientError::Matrix { status: 400, errcode: field("errcode"), message: field("error") })
            }
        }
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
