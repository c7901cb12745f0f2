//! The node's [`OlmStore`]: ghost devices' Olm accounts in the database, sealed under the master
//! key, one owner at a time among the node processes.
//!
//! - **Sealed**: the pickle holds every private key of a ghost device; it is sealed with the
//!   vault's format ([`crate::vault::seal`]) under the label `olm-account:<user>:<device>`, so a
//!   blob cannot be moved to another ghost's row and still open.
//! - **One owner**: [`OlmStore::hold`] is a lease (`olm-account:<user>`, [`crate::lease`]) on
//!   PostgreSQL shared by replicas; on SQLite the one process holds every lease.
//! - Olm sessions and room keys are sealed too, each under a label naming its ghost (and room),
//!   and written with the account in one step ([`crate::store::olm_sessions`]).
//! - **No fork**: saves are versioned ([`crate::store::olm_accounts`]), which holds even when a
//!   lease ran out under a slow holder.

use std::sync::Arc;

use dm3_bridge_connector::BoxFuture;
use dm3_bridge_matrix::crypto::{
    AccountWrite, IndexClaim, OlmStepWrite, OlmStore, OlmStoreError, Saved, SecretPickle, StoredAccount,
    StoredRoomKey,
};
use ruma::{OwnedDeviceId, UserId};

use crate::lease::{HELD_FOR, Leases};
use crate::store::{MegolmInboundSave, MegolmIndex, OlmAccountSave, OlmSessionSave, OlmStep, Store};
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

    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    pub(super) fn master(&self) -> &MasterKey {
        &self.master
    }
}

/// The purpose label an account is sealed under: its ghost and device.
fn label(ghost: &UserId, device: &str) -> String {
    format!("olm-account:{ghost}:{device}")
}

/// The label of an Olm session: its ghost and session id.
pub(super) fn session_label(ghost: &UserId, session_id: &str) -> String {
    format!("olm-session:{ghost}:{session_id}")
}

/// The label of a room key: its ghost, room and session id.
fn room_key_label(ghost: &UserId, room_id: &str, session_id: &str) -> String {
    format!("megolm-inbound:{ghost}:{room_id}:{session_id}")
}

impl SealedOlmStore {
    /// The row save of an account write: sealed, its version as the database holds it.
    pub(super) fn account_save(&self, write: &AccountWrite<'_>) -> Result<OlmAccountSave, OlmStoreError> {
        let sealed = self
            .master
            .seal(&label(write.ghost, write.device.as_str()), write.pickle.expose())
            .map_err(failed)?;
        Ok(OlmAccountSave {
            user_id: write.ghost.to_string(),
            device_id: write.device.to_string(),
            sealed,
            device_published: write.device_published,
            expected: write.expected.map(i64::try_from).transpose().map_err(failed)?,
            now_ms: crate::clock::now_ms(),
        })
    }
}

/// Counts a save by its outcome ([`MATRIX_OLM_ACCOUNT_SAVES`]).
pub(super) fn count_save<T>(saved: &Result<Option<T>, crate::store::StoreError>) {
    let outcome = match saved {
        Ok(Some(_)) => "written",
        Ok(None) => "conflict",
        Err(_) => "failed",
    };
    metrics::counter!(MATRIX_OLM_ACCOUNT_SAVES, "outcome" => outcome).increment(1);
}

pub(super) fn failed(e: impl std::fmt::Display) -> OlmStoreError {
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
            let save = self.account_save(&write)?;
            let saved = self.store.save_olm_account(save).await;
            count_save(&saved);
            Ok(match saved.map_err(failed)? {
                Some(version) => Saved::Written(u64::try_from(version).map_err(failed)?),
                None => Saved::Conflict,
            })
        })
    }

    fn olm_sessions<'a>(
        &'a self,
        ghost: &'a UserId,
        sender_key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SecretPickle>, OlmStoreError>> {
        Box::pin(async move {
            let rows = self.store.olm_sessions(ghost.as_str(), sender_key).await.map_err(failed)?;
            rows.iter()
                .map(|row| {
                    let opened = self
                        .master
                        .open(&session_label(ghost, &row.session_id), &row.sealed)
                        .map_err(failed)?;
                    Ok(SecretPickle::from_bytes(opened.expose().to_vec()))
                })
                .collect()
        })
    }

    fn room_key<'a>(
        &'a self,
        ghost: &'a UserId,
        room_id: &'a str,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredRoomKey>, OlmStoreError>> {
        Box::pin(async move {
            let Some(row) =
                self.store.megolm_inbound(ghost.as_str(), room_id, session_id).await.map_err(failed)?
            else {
                return Ok(None);
            };
            let opened =
                self.master.open(&room_key_label(ghost, room_id, session_id), &row.sealed).map_err(failed)?;
            Ok(Some(StoredRoomKey {
                sender_key: row.sender_key,
                signing_key: row.signing_key,
                sender_user: row.sender_user,
                pickle: SecretPickle::from_bytes(opened.expose().to_vec()),
            }))
        })
    }

    fn claim_index<'a>(&'a self, claim: IndexClaim<'a>) -> BoxFuture<'a, Result<bool, OlmStoreError>> {
        Box::pin(async move {
            let index = MegolmIndex {
                user_id: claim.ghost.as_str(),
                room_id: claim.room_id,
                session_id: claim.session_id,
                message_index: claim.message_index,
                event_id: claim.event_id,
            };
            self.store.claim_megolm_index(&index, crate::clock::now_ms()).await.map_err(failed)
        })
    }

    fn save_olm_step<'a>(&'a self, step: OlmStepWrite<'a>) -> BoxFuture<'a, Result<Saved, OlmStoreError>> {
        Box::pin(async move {
            let ghost = step.account.ghost;
            let account = self.account_save(&step.account)?;
            let next = account.next_version();
            let session = OlmSessionSave {
                user_id: ghost.to_string(),
                sender_key: step.session.sender_key.clone(),
                session_id: step.session.session_id.clone(),
                sealed: self
                    .master
                    .seal(&session_label(ghost, &step.session.session_id), step.session.pickle.expose())
                    .map_err(failed)?,
            };
            let room_keys = match &step.room_key {
                None => Vec::new(),
                Some(key) => vec![MegolmInboundSave {
                    user_id: ghost.to_string(),
                    room_id: key.room_id.clone(),
                    session_id: key.session_id.clone(),
                    sender_key: key.sender_key.clone(),
                    signing_key: key.signing_key.clone(),
                    sender_user: key.sender_user.clone(),
                    sealed: self
                        .master
                        .seal(&room_key_label(ghost, &key.room_id, &key.session_id), key.pickle.expose())
                        .map_err(failed)?,
                }],
            };
            let olm_step = OlmStep {
                account: Some(account),
                sessions: vec![session],
                room_keys,
                inbox_seq: step.inbox_seq.map(i64::try_from).transpose().map_err(failed)?,
                now_ms: crate::clock::now_ms(),
            };
            let saved = self.store.save_olm_step(olm_step).await.map(|written| written.then_some(next));
            count_save(&saved);
            Ok(match saved.map_err(failed)? {
                Some(version) => Saved::Written(u64::try_from(version).map_err(failed)?),
                None => Saved::Conflict,
            })
        })
    }
}
