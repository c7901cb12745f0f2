//! The one-time-key counts MSC3202 adds to transactions, read for the bridge's own devices.
//!
//! With `org.matrix.msc3202: true` in the registration, Synapse puts into each transaction how
//! many one-time keys each appservice device has left and which fallback keys are still
//! unused. The bridge tops a device up when its count falls; it reads the counts beside ruma's
//! view of the transaction, from the same bytes, because ruma carries them only behind an
//! unstable feature and under one of the two names Synapse writes
//! (`device_one_time_keys_count`, and `device_one_time_key_counts` as MSC3202 now spells it).
//!
//! Every part is bounded: only users in the ghosts' namespace count, at most
//! [`MAX_DEVICES_PER_TRANSACTION`] devices are read, and a malformed part is skipped rather
//! than refusing the transaction (the timeline events in it must still be stored; the counts
//! come again with the next one).

use std::collections::BTreeMap;

use ruma::{OwnedDeviceId, OwnedUserId, UserId};
use serde::Deserialize;
use serde_json::Value;

use crate::ghost::GhostNamespace;

use super::account::SIGNED_CURVE25519;

/// Most devices whose counts one transaction may report; more are ignored (they come again).
pub const MAX_DEVICES_PER_TRANSACTION: usize = 1000;

/// A ghost device's keys on the homeserver, as a transaction reported them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKeyCount {
    pub user: OwnedUserId,
    pub device: OwnedDeviceId,
    /// Unclaimed `signed_curve25519` one-time keys.
    pub one_time_keys: u64,
    /// Whether a `signed_curve25519` fallback key is unused; `None` if the transaction did not say.
    pub unused_fallback: Option<bool>,
}

type PerDevice<T> = BTreeMap<String, BTreeMap<String, T>>;

#[derive(Deserialize, Default)]
struct Extensions {
    #[serde(rename = "org.matrix.msc3202.device_one_time_key_counts", default)]
    counts: Option<Value>,
    #[serde(rename = "org.matrix.msc3202.device_one_time_keys_count", default)]
    counts_old_name: Option<Value>,
    #[serde(rename = "org.matrix.msc3202.device_unused_fallback_key_types", default)]
    fallback: Option<Value>,
}

/// The counts of `ghosts`' devices in a transaction's `body` (empty if it has none).
pub fn key_counts(body: &[u8], ghosts: &GhostNamespace) -> Vec<DeviceKeyCount> {
    let Ok(extensions) = serde_json::from_slice::<Extensions>(body) else { return Vec::new() };
    let read = |value: Option<Value>| value.and_then(|v| serde_json::from_value::<PerDevice<Value>>(v).ok());
    let counts = read(extensions.counts).or_else(|| read(extensions.counts_old_name)).unwrap_or_default();
    let fallback = read(extensions.fallback).unwrap_or_default();
    let ours = |user: &str| UserId::parse(user).ok().filter(|u| ghosts.identity(u).is_ok());
    let mut found = Vec::new();
    for (user, devices) in &counts {
        let Some(user_id) = ours(user) else { continue };
        for (device, by_algorithm) in devices {
            if found.len() == MAX_DEVICES_PER_TRANSACTION {
                return found;
            }
            let one_time_keys = by_algorithm.get(SIGNED_CURVE25519).and_then(Value::as_u64).unwrap_or(0);
            let unused_fallback = fallback
                .get(user)
                .and_then(|d| d.get(device))
                .and_then(Value::as_array)
                .map(|types| types.iter().any(|t| t.as_str() == Some(SIGNED_CURVE25519)));
            found.push(DeviceKeyCount {
                user: user_id.clone(),
                device: OwnedDeviceId::from(device.as_str()),
                one_time_keys,
                unused_fallback,
            });
        }
    }
    found
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

    #[test]
    fn counts_of_ghost_devices_are_read_under_either_name() {
        for name in
            ["org.matrix.msc3202.device_one_time_key_counts", "org.matrix.msc3202.device_one_time_keys_count"]
        {
            let body = json!({
                "events": [],
                name: {
                    "@_dm3_alice.eth:hs": {"DM3A": {"signed_curve25519": 12}},
                    "@bob:hs": {"PHONE": {"signed_curve25519": 3}},
                },
                "org.matrix.msc3202.device_unused_fallback_key_types": {"@_dm3_alice.eth:hs": {"DM3A": []}},
            });
            let counts = key_counts(body.to_string().as_bytes(), &ghosts());
            assert_eq!(counts.len(), 1, "{name}: only the ghost's device");
            assert_eq!(counts[0].one_time_keys, 12);
            assert_eq!(counts[0].unused_fallback, Some(false));
        }
    }

    #[test]
    fn odd_parts_are_skipped_and_the_number_of_devices_is_bounded() {
        for body in [json!({"events": []}), json!({"org.matrix.msc3202.device_one_time_key_counts": 7})] {
            assert!(key_counts(body.to_string().as_bytes(), &ghosts()).is_empty(), "{body}");
        }
        assert!(key_counts(b"not json", &ghosts()).is_empty());
        let many: serde_json::Map<String, Value> = (0..MAX_DEVICES_PER_TRANSACTION + 5)
            .map(|i| (format!("D{i}"), json!({"signed_curve25519": 1})))
            .collect();
        let body = json!({"org.matrix.msc3202.device_one_time_key_counts": {"@_dm3_alice.eth:hs": many}});
        assert_eq!(key_counts(body.to_string().as_bytes(), &ghosts()).len(), MAX_DEVICES_PER_TRANSACTION);
    }
}
