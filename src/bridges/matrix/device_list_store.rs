//! The node's [`DeviceListStore`]: members' device lists in the database
//! ([`crate::store::device_lists`]), so that two replicas on one PostgreSQL agree on which list
//! is outdated, and a restart keeps both the lists and the marks.
//!
//! Counts the queries the lists save the homeserver from: one [`MATRIX_DEVICE_LIST_QUERIES`]
//! per `/keys/query`, which the connector announces by [`DeviceListStore::fetching`] right
//! before it asks.

use dm3_bridge_connector::BoxFuture;
use dm3_bridge_matrix::crypto::{
    DeviceList, DeviceListStore, DeviceListUpdates, DeviceListWrite, KnownDevice, OlmStoreError,
};
use ruma::{OwnedDeviceId, OwnedUserId};

use super::olm_store::{SealedOlmStore, failed};
use crate::store::{DeviceListSave, DeviceRow};
use crate::telemetry::metrics::MATRIX_DEVICE_LIST_QUERIES;

fn names(users: &[OwnedUserId]) -> Vec<String> {
    users.iter().map(ToString::to_string).collect()
}

impl DeviceListStore for SealedOlmStore {
    fn current<'a>(
        &'a self,
        users: &'a [OwnedUserId],
    ) -> BoxFuture<'a, Result<Vec<DeviceList>, OlmStoreError>> {
        Box::pin(async move {
            let lists = self
                .store()
                .current_device_lists(&names(users), crate::clock::now_ms())
                .await
                .map_err(failed)?;
            Ok(lists
                .into_iter()
                .filter_map(|(user, devices, identity)| {
                    // Only users asked for come back, so their ids parse.
                    let user = OwnedUserId::try_from(user).ok()?;
                    let devices = devices
                        .into_iter()
                        .map(|row| KnownDevice {
                            device: OwnedDeviceId::from(row.device_id.as_str()),
                            curve25519: row.curve25519,
                            ed25519: row.ed25519,
                            keys_json: row.keys_json,
                        })
                        .collect();
                    Some(DeviceList { user, devices, identity })
                })
                .collect())
        })
    }

    fn fetching<'a>(
        &'a self,
        users: &'a [OwnedUserId],
    ) -> BoxFuture<'a, Result<Vec<(OwnedUserId, u64)>, OlmStoreError>> {
        Box::pin(async move {
            metrics::counter!(MATRIX_DEVICE_LIST_QUERIES).increment(1);
            let generations = self
                .store()
                .fetching_device_lists(&names(users), crate::clock::now_ms())
                .await
                .map_err(failed)?;
            generations
                .into_iter()
                .map(|(user, generation)| {
                    Ok((
                        OwnedUserId::try_from(user).map_err(failed)?,
                        u64::try_from(generation).map_err(failed)?,
                    ))
                })
                .collect()
        })
    }

    fn save(&self, lists: Vec<DeviceListWrite>) -> BoxFuture<'_, Result<(), OlmStoreError>> {
        Box::pin(async move {
            let saves = lists
                .into_iter()
                .map(|list| {
                    Ok(DeviceListSave {
                        user_id: list.user.to_string(),
                        generation: i64::try_from(list.generation).map_err(failed)?,
                        identity: list.identity,
                        devices: list
                            .devices
                            .into_iter()
                            .map(|d| DeviceRow {
                                device_id: d.device.to_string(),
                                curve25519: d.curve25519,
                                ed25519: d.ed25519,
                                keys_json: d.keys_json,
                            })
                            .collect(),
                    })
                })
                .collect::<Result<Vec<_>, OlmStoreError>>()?;
            self.store().save_device_lists(saves, crate::clock::now_ms()).await.map_err(failed)?;
            Ok(())
        })
    }

    fn mark<'a>(&'a self, updates: &'a DeviceListUpdates) -> BoxFuture<'a, Result<(), OlmStoreError>> {
        Box::pin(async move {
            self.store()
                .mark_device_lists(&names(&updates.changed), &names(&updates.left), crate::clock::now_ms())
                .await
                .map_err(failed)
        })
    }
}
