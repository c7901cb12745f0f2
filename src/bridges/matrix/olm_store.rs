//! The node's [`OlmStore`]: ghost devices' Olm accounts in the database, sealed under the master
//! key, one owner at a time among the node processes.
//!
//! - **Sealed**: the pickle holds every private key of a ghost device; it is sealed with the
//!   vault's format ([`crate::vault::seal`]) under the label `olm-account:<user>:<device>`, so a
//!   blob cannot be moved to another ghost's row and still open.
//! - **One owner**: [`OlmStore::hold`] is a lease (`olm-account:<user>`, [`crate::lease`]) on
//!   PostgreSQL shared by replicas; on SQLite the one process holds every lease.
//! - **No fork**: saves are versioned ([`crate::store::olm_accounts`]), which holds even when a
//!   lease ran out under a slow holder.

use std::sync::Arc;

use dm3_bridge_connector::BoxFuture;
use dm3_bridge_matrix::crypto::{AccountWrite, OlmStore, OlmStoreError, Saved, SecretPickle, StoredAccount};
use ruma::{OwnedDeviceId, UserId};

use crate::lease::{HELD_FOR, Leases};
use crate::store::{OlmAccountSave, Store};
use crate::telemetry::metrics::MATRIX_OLM_ACCOUNT_SAVES;
use crate::vault::MasterKey;

/// Ghost devices' Olm accounts in the node's database.
pub struct SealedOlmStore {
    store: Store,
    master: Arc<MasterKey>,
    leases: Leases,
}

impl SealedOlmStore {
    pub fn new(store: Store, master: Arc<MasterKey>, leases: Leases) -> Self {
        Self { store, master, leases }
    }
}

/// The purpose label an account is sealed under: its ghost and device.
fn label(ghost: &UserId, device: &str) -> String {
    format!("olm-account:{ghost}:{device}")
}

fn failed(e: impl std::fmt::Display) -> OlmStoreError {
    OlmStoreError(e.to_string())
}

impl OlmStore for SealedOlmStore {
    fn hold<'a>(&'a self, ghost: &'a UserId) -> BoxFuture<'a, Result<bool, OlmStoreError>> {
        Box::pin(async move { Ok(self.leases.try_take(&format!("olm-account:{ghost}"), HELD_FOR).await) })
    }

    fn load_account<'a>(
        &'a self,
        ghost: &'a UserId,
    ) -> BoxFuture<'a, Result<Option<StoredAccount>, OlmStoreError>> {
        Box::pin(async move {
            let Some(row) = self.store.olm_account(ghost.as_str()).await.map_err(failed)? else {
                return Ok(None);
            };
            let opened = self.master.open(&label(ghost, &row.device_id), &row.sealed).map_err(failed)?;
            Ok(Some(StoredAccount {
                device: OwnedDeviceId::from(row.device_id.as_str()),
                pickle: SecretPickle::from_bytes(opened.expose().to_vec()),
                version: u64::try_from(row.version).map_err(failed)?,
                device_published: row.device_published,
            }))
        })
    }

    fn save_account<'a>(&'a self, write: AccountWrite<'a>) -> BoxFuture<'a, Result<Saved, OlmStoreError>> {
        Box::pin(async move {
            let sealed = self
                .master
                .seal(&label(write.ghost, write.device.as_str()), write.pickle.expose())
                .map_err(failed)?;
            let expected = write.expected.map(i64::try_from).transpose().map_err(failed)?;
            let save = OlmAccountSave {
                user_id: write.ghost.to_string(),
                device_id: write.device.to_string(),
                sealed,
                device_published: write.device_published,
                expected,
                now_ms: crate::clock::now_ms(),
            };
            let saved = self.store.save_olm_account(save).await;
            let outcome = match &saved {
                Ok(Some(_)) => "written",
                Ok(None) => "conflict",
                Err(_) => "failed",
            };
            metrics::counter!(MATRIX_OLM_ACCOUNT_SAVES, "outcome" => outcome).increment(1);
            Ok(match saved.map_err(failed)? {
                Some(version) => Saved::Written(u64::try_from(version).map_err(failed)?),
                None => Saved::Conflict,
            })
        })
    }
}
