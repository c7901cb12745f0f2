//! The custody switch over the identity tables (docs/gateway.md sections 2 and 4): a
//! self-custody row inserted without a key, and the two switches, each one transaction that
//! changes the row and the keys together, optimistic on the custody and version read.

use alloy_primitives::Address;
use dm3::crypto::eth::checksum;
use dm3::ens::EnsName;
use dm3::profile::SignedUserProfile;
use sqlx::Row;

use super::{Custody, IdentityRecord, SealedKey, corrupt};
use crate::store::{Store, StoreError, write_on};

/// What a custody switch found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switched {
    /// Done: the row and the keys changed together.
    Done,
    /// The identity is gone, or no longer in the custody and version the caller read.
    Changed,
    /// Envelopes for it wait in the bridge's inbox, accepted for its custodial keys: they are
    /// delivered first (docs/gateway.md section 4). Nothing was written.
    Pending(u64),
}

impl Store {
    /// Stores a new self-custody identity: its row, and no key. `false` when the name or the
    /// network user is already taken.
    pub async fn insert_self_custody_identity(&self, record: &IdentityRecord) -> Result<bool, StoreError> {
        let record = record.clone();
        if !record.custody.is_self_custody() {
            return Err(corrupt(record.name.as_str(), "a custodial identity needs its key"));
        }
        write_on!(self, tx => Ok(insert_row!(tx, record)))
    }

    /// Makes `name` self-custody with the user's `address` and `profile`, if it is still in
    /// `from` custody: every key row is deleted and the row changed in one transaction, unless
    /// envelopes wait for it in the inbox. From self-custody it replaces address and profile.
    pub async fn switch_to_self_custody(
        &self,
        name: &EnsName,
        from: Custody,
        address: &Address,
        profile: &SignedUserProfile,
        now_ms: i64,
    ) -> Result<Switched, StoreError> {
        // An inbox job's conversation is `<receiver>:<sender>` (engine/inbox.rs); an ENS name
        // has no `:`, so the prefix names exactly this receiver's jobs.
        const PENDING: &str = "SELECT COUNT(*) AS n FROM bridge_jobs WHERE queue = 'inbox' AND state = 'pending' \
             AND substr(conversation, 1, $2) = $1";
        const UPDATE: &str = "UPDATE identities SET custody = 'self', key_version = $4, address = $5, profile = $6, \
             updated_at = $7 WHERE name = $1 AND custody = $2 AND key_version = $3";
        let (name, address, profile) = (name.clone(), checksum(address), profile.canonical());
        // The last version the node held stays the row's version (section 2 of docs/gateway.md).
        let after_version = from.version_column();
        write_on!(self, tx => {
            let prefix = format!("{}:", name.as_str());
            // An INTEGER on both backends: PostgreSQL has no substr(text, int, bigint).
            let length = i32::try_from(prefix.len()).unwrap_or(i32::MAX);
            let pending = sqlx::query(PENDING)
                .bind(prefix.as_str())
                .bind(length)
                .fetch_one(&mut *tx)
                .await?
                .try_get::<i64, _>("n")?;
            if pending > 0 {
                return Ok(Switched::Pending(pending.unsigned_abs()));
            }
            let n = sqlx::query(UPDATE)
                .bind(name.as_str())
                .bind(from.as_str())
                .bind(from.version_column())
                .bind(after_version)
                .bind(address.as_str())
                .bind(profile.as_str())
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n != 1 {
                return Ok(Switched::Changed);
            }
            sqlx::query("DELETE FROM identity_keys WHERE name = $1").bind(name.as_str()).execute(&mut *tx).await?;
            Ok(Switched::Done)
        })
    }

    /// Makes the self-custody identity `name` custodial again with `key`, a new wallet, and the
    /// profile it signed, if it is still self-custody after `after_version`.
    pub async fn switch_to_custodial(
        &self,
        name: &EnsName,
        after_version: u32,
        key: &SealedKey,
        profile: &SignedUserProfile,
    ) -> Result<bool, StoreError> {
        const UPDATE: &str = "UPDATE identities SET custody = 'custodial', key_version = $3, address = $4, \
             profile = $5, updated_at = $6 WHERE name = $1 AND custody = 'self' AND key_version = $2";
        let (name, key, profile) = (name.clone(), key.clone(), profile.canonical());
        write_on!(self, tx => {
            let updated = set_current_key!(tx, UPDATE, name, after_version, key, profile);
            if updated {
                insert_key!(tx, name, key);
            }
            Ok(updated)
        })
    }
}
