//! The device lists of Matrix users whose devices receive ghosts' room keys, kept between sends
//! (migration 0024) with their cross-signing keys (0025), so that an encrypted send asks the homeserver (`/keys/query`) only for the
//! members whose list it does not hold or that changed since.
//!
//! Each tracked user has a generation. A transaction's MSC3202 `device_lists.changed` bumps it
//! ([`Store::mark_device_lists`], before the transaction is answered): the list is outdated. A
//! query starts by reading the generation ([`Store::fetching_device_lists`], which starts
//! tracking a user not yet tracked), and its answer is kept only if the generation is still the
//! one read ([`Store::save_device_lists`]): a change announced while the query ran leaves the
//! list outdated instead of being overwritten by the older answer. The mark is a row, not
//! memory, so every replica on one PostgreSQL sees it.
//!
//! A list also stops being current [`DEVICE_LIST_MAX_AGE_MS`] after it was fetched: Synapse
//! (1.163) never sends `left`, and tells an appservice about a user's changes only while they
//! share a room with one of its users, so a user who left every such room and came back later
//! would otherwise be believed from a list nobody kept up to date.

use sqlx::Row as _;

use super::{Store, StoreError, on_pool, write_on};

/// How long a fetched device list counts as current when no change was announced.
pub const DEVICE_LIST_MAX_AGE_MS: i64 = 60 * 60 * 1000;

/// A device of a user's list, as checked when it was fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub device_id: String,
    pub curve25519: String,
    pub ed25519: String,
    /// The device's signed object as the homeserver relayed it.
    pub keys_json: String,
}

/// A fetched list to keep, under the generation read before the query.
#[derive(Debug, Clone)]
pub struct DeviceListSave {
    pub user_id: String,
    pub generation: i64,
    pub devices: Vec<DeviceRow>,
    /// The user's cross-signing key objects as the same answer relayed them (migration 0025).
    pub identity: Option<String>,
}

/// A current list: its user, devices and cross-signing keys as kept.
pub type KeptDeviceList = (String, Vec<DeviceRow>, Option<String>);

impl Store {
    /// The lists of `users` that are current as of `now_ms`: a user not tracked, outdated or
    /// fetched too long ago is missing from the answer.
    pub async fn current_device_lists(
        &self,
        users: &[String],
        now_ms: i64,
    ) -> Result<Vec<KeptDeviceList>, StoreError> {
        // One statement per user, so the list, its devices and its keys are one snapshot.
        const SQL: &str = "SELECT l.cross_signing_json, d.device_id, d.curve25519, d.ed25519, d.keys_json \
             FROM matrix_device_lists l LEFT JOIN matrix_devices d ON d.user_id = l.user_id \
             WHERE l.user_id = $1 AND l.fetched_generation = l.generation AND l.fetched_at >= $2 \
             ORDER BY d.device_id";
        let oldest = now_ms.saturating_sub(DEVICE_LIST_MAX_AGE_MS);
        let mut lists = Vec::new();
        for user in users {
            // A current list without devices is one row of NULLs: `None`.
            let rows: Vec<(Option<String>, Option<DeviceRow>)> = on_pool!(self.pool(), p => {
                let rows = sqlx::query(SQL).bind(user.as_str()).bind(oldest).fetch_all(p).await?;
                rows.iter()
                    .map(|row| {
                        let identity = row.try_get::<Option<String>, _>("cross_signing_json")?;
                        let Some(device_id) = row.try_get::<Option<String>, _>("device_id")? else {
                            return Ok((identity, None));
                        };
                        Ok((identity, Some(DeviceRow {
                            device_id,
                            curve25519: row.try_get("curve25519")?,
                            ed25519: row.try_get("ed25519")?,
                            keys_json: row.try_get("keys_json")?,
                        })))
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()?
            });
            let Some(identity) = rows.first().map(|(identity, _)| identity.clone()) else {
                continue;
            };
            lists.push((user.clone(), rows.into_iter().filter_map(|(_, device)| device).collect(), identity));
        }
        Ok(lists)
    }

    /// Starts tracking `users` (those not tracked yet) before their lists are queried: each
    /// one's generation, which [`Store::save_device_lists`] must find unchanged.
    pub async fn fetching_device_lists(
        &self,
        users: &[String],
        now_ms: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        const TRACK: &str = "INSERT INTO matrix_device_lists \
             (user_id, generation, fetched_generation, fetched_at, updated_at) VALUES ($1, 0, NULL, 0, $2) \
             ON CONFLICT (user_id) DO NOTHING";
        const READ: &str = "SELECT generation FROM matrix_device_lists WHERE user_id = $1";
        let users = users.to_vec();
        write_on!(self, c => {
            let mut generations = Vec::new();
            for user in users {
                sqlx::query(TRACK).bind(user.as_str()).bind(now_ms).execute(&mut *c).await?;
                let generation: i64 = sqlx::query_scalar(READ).bind(user.as_str()).fetch_one(&mut *c).await?;
                generations.push((user, generation));
            }
            Ok(generations)
        })
    }

    /// Keeps each fetched list whose user is still tracked at the generation it names, in one
    /// transaction: how many were kept (the others were marked outdated, or forgotten, while
    /// their query ran).
    pub async fn save_device_lists(
        &self,
        lists: Vec<DeviceListSave>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        const FETCHED: &str = "UPDATE matrix_device_lists SET fetched_generation = $2, fetched_at = $3, \
             updated_at = $3, cross_signing_json = $4 WHERE user_id = $1 AND generation = $2";
        const FORGET: &str = "DELETE FROM matrix_devices WHERE user_id = $1";
        const DEVICE: &str = "INSERT INTO matrix_devices (user_id, device_id, curve25519, ed25519, keys_json) \
             VALUES ($1, $2, $3, $4, $5)";
        write_on!(self, c => {
            let mut kept = 0;
            for list in lists {
                let fetched = sqlx::query(FETCHED)
                    .bind(list.user_id.as_str())
                    .bind(list.generation)
                    .bind(now_ms)
                    .bind(list.identity.as_deref())
                    .execute(&mut *c)
                    .await?;
                if fetched.rows_affected() != 1 {
                    continue;
                }
                sqlx::query(FORGET).bind(list.user_id.as_str()).execute(&mut *c).await?;
                for device in &list.devices {
                    sqlx::query(DEVICE)
                        .bind(list.user_id.as_str())
                        .bind(device.device_id.as_str())
                        .bind(device.curve25519.as_str())
                        .bind(device.ed25519.as_str())
                        .bind(device.keys_json.as_str())
                        .execute(&mut *c)
                        .await?;
                }
                kept += 1;
            }
            Ok(kept)
        })
    }

    /// What a transaction's `device_lists` says, durably: the lists of `changed` are outdated,
    /// those of `left` forgotten. Users not tracked are not recorded (their list is fetched
    /// when first needed anyway).
    pub async fn mark_device_lists(
        &self,
        changed: &[String],
        left: &[String],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const OUTDATED: &str =
            "UPDATE matrix_device_lists SET generation = generation + 1, updated_at = $2 WHERE user_id = $1";
        const DEVICES: &str = "DELETE FROM matrix_devices WHERE user_id = $1";
        const LIST: &str = "DELETE FROM matrix_device_lists WHERE user_id = $1";
        let (changed, left) = (changed.to_vec(), left.to_vec());
        write_on!(self, c => {
            for user in changed {
                sqlx::query(OUTDATED).bind(user.as_str()).bind(now_ms).execute(&mut *c).await?;
            }
            for user in left {
                sqlx::query(DEVICES).bind(user.as_str()).execute(&mut *c).await?;
                sqlx::query(LIST).bind(user.as_str()).execute(&mut *c).await?;
            }
            Ok(())
        })
    }

    /// Forgets the lists nobody fetched or changed since `before_ms` (users no longer in any
    /// room with a ghost): how many.
    pub async fn prune_device_lists(&self, before_ms: i64) -> Result<u64, StoreError> {
        const DEVICES: &str = "DELETE FROM matrix_devices WHERE user_id IN \
             (SELECT user_id FROM matrix_device_lists WHERE updated_at < $1)";
        const LISTS: &str = "DELETE FROM matrix_device_lists WHERE updated_at < $1";
        write_on!(self, c => {
            sqlx::query(DEVICES).bind(before_ms).execute(&mut *c).await?;
            Ok(sqlx::query(LISTS).bind(before_ms).execute(&mut *c).await?.rows_affected())
        })
    }
}
