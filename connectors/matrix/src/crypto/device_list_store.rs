//! Where members' device lists live: the part of the store the device lists need
//! ([`super::device_lists`]), beside [`OlmStore`](super::OlmStore), implemented by the service
//! over its database.
//!
//! The store answers for the one thing the connector cannot see: which lists are outdated. A
//! list is outdated from the moment a transaction's `device_lists.changed` names its user
//! ([`DeviceListStore::mark`]) until an answer asked for **after** that is kept; the generation
//! read by [`DeviceListStore::fetching`] before the query and named by
//! [`DeviceListStore::save`] after it is what tells the two apart.

use dm3_bridge_connector::BoxFuture;
use ruma::{OwnedDeviceId, OwnedUserId};

use super::device_list_updates::DeviceListUpdates;
use super::store::OlmStoreError;

/// A device of a kept list, checked when it was fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownDevice {
    pub device: OwnedDeviceId,
    /// Base64, as `/keys/query` gave it.
    pub curve25519: String,
    pub ed25519: String,
    /// The device's signed object as the homeserver relayed it.
    pub keys_json: String,
}

/// A user's current list, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceList {
    pub user: OwnedUserId,
    pub devices: Vec<KnownDevice>,
    /// The user's master and self-signing key objects as the same answer relayed them
    /// ([`super::user_identity::kept_identity`]), unchecked; `None` if they published none.
    pub identity: Option<String>,
}

/// A fetched list to keep if its user's generation is still `generation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceListWrite {
    pub user: OwnedUserId,
    pub generation: u64,
    pub devices: Vec<KnownDevice>,
    pub identity: Option<String>,
}

/// Members' device lists: implemented by the service over its database.
pub trait DeviceListStore: Send + Sync + 'static {
    /// The current lists among `users`; a user not tracked or outdated is missing.
    fn current<'a>(
        &'a self,
        users: &'a [OwnedUserId],
    ) -> BoxFuture<'a, Result<Vec<DeviceList>, OlmStoreError>>;

    /// Starts tracking `users` before their lists are asked for: each one's generation. Called
    /// once per `/keys/query`, right before it.
    fn fetching<'a>(
        &'a self,
        users: &'a [OwnedUserId],
    ) -> BoxFuture<'a, Result<Vec<(OwnedUserId, u64)>, OlmStoreError>>;

    /// Keeps each list whose user is still at the generation it names, in one transaction.
    fn save(&self, lists: Vec<DeviceListWrite>) -> BoxFuture<'_, Result<(), OlmStoreError>>;

    /// Marks `updates.changed` outdated and forgets `updates.left`, durably before answering.
    fn mark<'a>(&'a self, updates: &'a DeviceListUpdates) -> BoxFuture<'a, Result<(), OlmStoreError>>;
}
