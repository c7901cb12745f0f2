//! Members' device lists, kept by the service between sends and refreshed when the homeserver
//! says they changed: who gets a ghost's room keys, and which devices a sender has.
//!
//! Every device in a kept list was checked as [`super::recipients`] checks what `/keys/query`
//! relays (it names its user and device, and its own Ed25519 key signed it) before it was kept;
//! nothing is believed from the store that was not believed from the homeserver.
//! The user's cross-signing keys from the same answer are kept beside the list, unchecked
//! (they are checked when used, [`super::sender_trust`]), so that one mark outdates both.
//!
//! A list is read from the store while it is current, and asked for (`/keys/query`) only for a
//! user the store does not track, or whose list a transaction's `device_lists.changed` marked
//! outdated ([`super::device_list_updates`]). The order that loses no change:
//!
//! 1. [`DeviceListStore::fetching`] starts tracking the users and reads their generations;
//! 2. the query;
//! 3. [`DeviceListStore::save`] keeps each answer only under the generation read in 1, so a
//!    change marked while the query ran leaves the list outdated (the next send asks again)
//!    instead of being overwritten by the older answer.
//!
//! Without a [`DeviceListStore`] (a node that keeps none), every call asks the homeserver.
//! What the store keeps, and why a generation: [`super::device_list_store`].

use std::sync::Arc;

use dm3_bridge_connector::BoxFuture;
use ruma::{OwnedUserId, UserId};
use serde_json::{Map, Value};
use vodozemac::{Curve25519PublicKey, Ed25519PublicKey};

use super::device::GhostDevice;
use super::device_list_store::{DeviceList, DeviceListStore, DeviceListWrite, KnownDevice};
use super::device_list_updates::DeviceListUpdates;
use super::devices::{DeviceError, GhostDevices};
use super::recipients::{Recipient, vouched_devices};
use super::user_identity::kept_identity;
use crate::client::QueriedKeys;

impl KnownDevice {
    pub(super) fn checked(recipient: &Recipient, object: &Map<String, Value>) -> Self {
        Self {
            device: recipient.device.clone(),
            curve25519: recipient.curve25519.to_base64(),
            ed25519: recipient.ed25519.to_base64(),
            keys_json: Value::Object(object.clone()).to_string(),
        }
    }

    /// The device as a room key's recipient; `None` if its stored keys do not read.
    pub(super) fn recipient(&self, user: &UserId) -> Option<Recipient> {
        Some(Recipient {
            user: user.to_owned(),
            device: self.device.clone(),
            curve25519: Curve25519PublicKey::from_base64(&self.curve25519).ok()?,
            ed25519: Ed25519PublicKey::from_base64(&self.ed25519).ok()?,
        })
    }
}

impl GhostDevices {
    /// Keeps members' device lists in `store`; the first store set stays.
    pub fn set_device_lists(&self, store: Arc<dyn DeviceListStore>) {
        if self.device_lists.set(store).is_err() {
            tracing::warn!("the device list store was set twice; the first stays");
        }
    }

    /// Records what a transaction says of device lists, durably (nothing without a store).
    pub async fn device_lists_changed(&self, updates: &DeviceListUpdates) -> Result<(), DeviceError> {
        match self.device_lists.get() {
            Some(lists) if !updates.is_empty() => Ok(lists.mark(updates).await?),
            _ => Ok(()),
        }
    }

    /// The checked devices of `users`, from their kept lists where current, asked for as
    /// `device` otherwise (all of them with `fresh`): the devices, and whether it asked.
    pub(super) async fn devices_of(
        &self,
        device: &GhostDevice,
        users: &[OwnedUserId],
        fresh: bool,
    ) -> Result<(Vec<Recipient>, bool), DeviceError> {
        let (lists, asked) = self.lists_of(device, users, fresh).await?;
        let recipients = lists
            .iter()
            .flat_map(|list| list.devices.iter().filter_map(|known| known.recipient(&list.user)))
            .collect();
        Ok((recipients, asked))
    }

    /// The lists of `users` (their checked devices, and their cross-signing keys as relayed),
    /// kept where current, asked for as `device` otherwise (all of them with `fresh`): the
    /// lists, and whether it asked.
    pub(super) async fn lists_of(
        &self,
        device: &GhostDevice,
        users: &[OwnedUserId],
        fresh: bool,
    ) -> Result<(Vec<DeviceList>, bool), DeviceError> {
        let Some(store) = self.device_lists.get() else {
            let keys = self.client().query_keys(device.as_device(), users).await?;
            let lists = keys.devices.keys().map(|user| answered_list(user, &keys)).collect();
            return Ok((lists, true));
        };
        let mut lists = if fresh { Vec::new() } else { store.current(users).await? };
        let missing: Vec<OwnedUserId> =
            users.iter().filter(|user| !lists.iter().any(|list| &list.user == *user)).cloned().collect();
        if missing.is_empty() {
            return Ok((lists, false));
        }
        let generations = store.fetching(&missing).await?;
        let keys = self.client().query_keys(device.as_device(), &missing).await?;
        let mut writes = Vec::new();
        for (user, generation) in generations {
            // A user the homeserver did not answer for (another server down) stays outdated.
            if !keys.devices.contains_key(&user) {
                tracing::warn!(%user, "the homeserver gave no device list for a member; asked again at the next send");
                continue;
            }
            let list = answered_list(&user, &keys);
            writes.push(DeviceListWrite {
                user: user.clone(),
                generation,
                devices: list.devices.clone(),
                identity: list.identity.clone(),
            });
            lists.push(list);
        }
        store.save(writes).await?;
        Ok((lists, true))
    }

    /// `user`'s device whose Curve25519 key is `curve25519`, if `user`'s device list shows it:
    /// the kept list, asked for again once if it does not.
    pub async fn listed_device(
        &self,
        ghost: &UserId,
        user: &UserId,
        curve25519: &str,
    ) -> Result<Option<Recipient>, DeviceError> {
        let verdict = self
            .judged_list(ghost, user, |lists| {
                let found = listed_in(&lists, user, curve25519).map(|(_, _, found)| found);
                Box::pin(std::future::ready(Ok(found.ok_or(()))))
            })
            .await?;
        Ok(verdict.ok())
    }

    /// `judge`'s verdict on `user`'s list as kept or, when it finds against the list and the
    /// list was not just asked for, on the list asked for once more: the user may have added or
    /// verified the device since their list was kept.
    pub(super) async fn judged_list<'j, Refusal>(
        &self,
        ghost: &UserId,
        user: &UserId,
        judge: impl Fn(Vec<DeviceList>) -> BoxFuture<'j, Result<Result<Recipient, Refusal>, DeviceError>>,
    ) -> Result<Result<Recipient, Refusal>, DeviceError> {
        let Some(loaded) = self.load(ghost).await? else { return Err(DeviceError::NoAccount) };
        let users = [user.to_owned()];
        let (lists, asked) = self.lists_of(&loaded.device, &users, false).await?;
        let verdict = judge(lists).await?;
        if verdict.is_ok() || asked {
            return Ok(verdict);
        }
        let (lists, _) = self.lists_of(&loaded.device, &users, true).await?;
        judge(lists).await
    }
}

/// `user`'s list in `lists`, and its device whose Curve25519 key is `curve25519`, if it shows
/// one: the device as kept, and as a recipient.
pub(super) fn listed_in<'a>(
    lists: &'a [DeviceList],
    user: &UserId,
    curve25519: &str,
) -> Option<(&'a DeviceList, &'a KnownDevice, Recipient)> {
    let list = lists.iter().find(|list| list.user == user)?;
    let (known, recipient) = list
        .devices
        .iter()
        .filter(|known| known.curve25519 == curve25519)
        .find_map(|known| Some((known, known.recipient(user)?)))?;
    Some((list, known, recipient))
}

/// `user`'s list as `keys` answered it: the devices that vouch for themselves, and the
/// cross-signing keys as relayed.
fn answered_list(user: &UserId, keys: &QueriedKeys) -> DeviceList {
    let devices = keys.devices.get(user).map(|devices| vouched_devices(user, devices)).unwrap_or_default();
    DeviceList {
        user: user.to_owned(),
        devices: devices.iter().map(|(recipient, object)| KnownDevice::checked(recipient, object)).collect(),
        identity: kept_identity(keys.master_keys.get(user), keys.self_signing_keys.get(user)),
    }
}
