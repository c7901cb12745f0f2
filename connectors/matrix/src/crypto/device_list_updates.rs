//! The device-list changes MSC3202 adds to transactions: whose devices changed, and whom the
//! bridge no longer shares a room with.
//!
//! With `org.matrix.msc3202: true` in the registration (and `msc3202_transaction_extensions`
//! on), Synapse puts `org.matrix.msc3202.device_lists` (`changed`, `left`) in a transaction for
//! every user whose device list changed and who shares a room with one of the bridge's users.
//! The bridge keeps members' device lists ([`super::device_lists`]), so a `changed` user's list
//! is outdated from then on, and a `left` user's forgotten. Read from the transaction's bytes
//! beside ruma's view, as [`super::key_counts`] reads the key counts; a malformed part reads as
//! no change rather than refusing the transaction. The body's size bound bounds the lists.

use ruma::{OwnedUserId, UserId};
use serde::Deserialize;
use serde_json::Value;

/// What one transaction says of device lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceListUpdates {
    /// Users whose devices changed: their kept list is outdated.
    pub changed: Vec<OwnedUserId>,
    /// Users the bridge no longer shares a room with: their kept list is forgotten.
    pub left: Vec<OwnedUserId>,
}

impl DeviceListUpdates {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.left.is_empty()
    }
}

#[derive(Deserialize, Default)]
struct Extensions {
    #[serde(rename = "org.matrix.msc3202.device_lists", default)]
    device_lists: Option<Value>,
}

/// The device-list changes in a transaction's `body` (empty if it has none).
pub fn device_list_updates(body: &[u8]) -> DeviceListUpdates {
    let Ok(extensions) = serde_json::from_slice::<Extensions>(body) else {
        return DeviceListUpdates::default();
    };
    let Some(lists) = extensions.device_lists else { return DeviceListUpdates::default() };
    let users = |key: &str| -> Vec<OwnedUserId> {
        lists
            .get(key)
            .and_then(Value::as_array)
            .map(|users| {
                users.iter().filter_map(Value::as_str).filter_map(|u| UserId::parse(u).ok()).collect()
            })
            .unwrap_or_default()
    };
    DeviceListUpdates { changed: users("changed"), left: users("left") }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::json;

    use super::*;

    #[test]
    fn changed_and_left_users_are_read_and_odd_parts_are_no_change() {
        let body = json!({
            "events": [],
            "org.matrix.msc3202.device_lists": {"changed": ["@bob:hs", "not a user", 3], "left": ["@carol:hs"]},
        });
        let updates = device_list_updates(body.to_string().as_bytes());
        assert_eq!(updates.changed, vec![OwnedUserId::try_from("@bob:hs").unwrap()]);
        assert_eq!(updates.left, vec![OwnedUserId::try_from("@carol:hs").unwrap()]);
        let odd = json!({"events": [], "org.matrix.msc3202.device_lists": "nonsense"});
        assert!(device_list_updates(odd.to_string().as_bytes()).is_empty());
        assert!(device_list_updates(br#"{"events": []}"#).is_empty());
    }
}
