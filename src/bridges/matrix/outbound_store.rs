//! The node's [`OutboundStore`]: ghosts' outbound Megolm sessions in the database, sealed under
//! the master key (label `megolm-outbound:<user>:<room>:<session>`), their Olm sessions sealed
//! as the inbound ones are ([`super::olm_store`]), every step under the ghost's account version
//! ([`crate::store::megolm_outbound`]).
//!
//! Counts what a Matrix operator asks about encryption: sessions made
//! ([`MATRIX_MEGOLM_SESSIONS`]) and room keys shared ([`MATRIX_ROOM_KEYS_SHARED`]), once the
//! step that made them is durable.

use dm3_bridge_connector::BoxFuture;
use dm3_bridge_matrix::crypto::{
    OlmStoreError, OutboundStep, OutboundStore, PendingToDevice, Saved, SecretPickle, SharedWith,
    StoredOutbound,
};
use ruma::UserId;

use super::olm_store::{SealedOlmStore, failed, session_label};
use crate::store::{MegolmOutboundSave, MegolmStep, OlmSessionSave};
use crate::telemetry::metrics::{MATRIX_MEGOLM_SESSIONS, MATRIX_ROOM_KEYS_SHARED};

/// The label of an outbound session: its ghost, room and session id.
fn outbound_label(ghost: &UserId, room_id: &str, session_id: &str) -> String {
    format!("megolm-outbound:{ghost}:{room_id}:{session_id}")
}

fn number(value: u64) -> Result<i64, OlmStoreError> {
    i64::try_from(value).map_err(failed)
}

impl OutboundStore for SealedOlmStore {
    fn outbound<'a>(
        &'a self,
        ghost: &'a UserId,
        room_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredOutbound>, OlmStoreError>> {
        Box::pin(async move {
            let Some(row) = self.store().megolm_outbound(ghost.as_str(), room_id).await.map_err(failed)?
            else {
                return Ok(None);
            };
            let opened = self
                .master()
                .open(&outbound_label(ghost, room_id, &row.session_id), &row.sealed)
                .map_err(failed)?;
            Ok(Some(StoredOutbound {
                session_id: row.session_id,
                pickle: SecretPickle::from_bytes(opened.expose().to_vec()),
                created_ms: u64::try_from(row.created_at).map_err(failed)?,
                messages: u64::try_from(row.messages).map_err(failed)?,
                shared: row
                    .shared
                    .into_iter()
                    .map(|(user, device, curve_key)| SharedWith { user, device, curve_key })
                    .collect(),
            }))
        })
    }

    fn pending<'a>(
        &'a self,
        ghost: &'a UserId,
        room_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PendingToDevice>, OlmStoreError>> {
        Box::pin(async move {
            let rows = self.store().megolm_pending(ghost.as_str(), room_id).await.map_err(failed)?;
            Ok(rows.into_iter().map(|(txn_id, body)| PendingToDevice { txn_id, body }).collect())
        })
    }

    fn save_outbound_step<'a>(
        &'a self,
        step: OutboundStep<'a>,
    ) -> BoxFuture<'a, Result<Saved, OlmStoreError>> {
        Box::pin(async move {
            let ghost = step.account.ghost;
            let account = self.account_save(&step.account)?;
            let next = account.next_version();
            let session = &step.session;
            let sealed = self
                .master()
                .seal(&outbound_label(ghost, step.room_id, &session.session_id), session.pickle.expose())
                .map_err(failed)?;
            let olm_sessions = step
                .olm_sessions
                .iter()
                .map(|s| {
                    Ok(OlmSessionSave {
                        user_id: ghost.to_string(),
                        sender_key: s.sender_key.clone(),
                        session_id: s.session_id.clone(),
                        sealed: self
                            .master()
                            .seal(&session_label(ghost, &s.session_id), s.pickle.expose())
                            .map_err(failed)?,
                    })
                })
                .collect::<Result<Vec<_>, OlmStoreError>>()?;
            let megolm = MegolmStep {
                account,
                room_id: step.room_id.to_owned(),
                session: MegolmOutboundSave {
                    session_id: session.session_id.clone(),
                    sealed,
                    created_at: number(session.created_ms)?,
                    messages: number(session.messages)?,
                },
                olm_sessions,
                shared: step
                    .shared
                    .iter()
                    .map(|s| (s.user.clone(), s.device.clone(), s.curve_key.clone()))
                    .collect(),
                pending: step.pending.as_ref().map(|p| (p.txn_id.clone(), p.body.clone())),
                now_ms: crate::clock::now_ms(),
            };
            let saved = self.store().save_megolm_step(megolm).await.map(|written| written.then_some(next));
            super::olm_store::count_save(&saved);
            Ok(match saved.map_err(failed)? {
                Some(version) => {
                    if step.new_session {
                        metrics::counter!(MATRIX_MEGOLM_SESSIONS).increment(1);
                    }
                    metrics::counter!(MATRIX_ROOM_KEYS_SHARED).increment(step.shared.len() as u64);
                    Saved::Written(u64::try_from(version).map_err(failed)?)
                }
                None => Saved::Conflict,
            })
        })
    }

    fn to_device_sent<'a>(
        &'a self,
        ghost: &'a UserId,
        txn_id: &'a str,
    ) -> BoxFuture<'a, Result<(), OlmStoreError>> {
        Box::pin(
            async move { self.store().megolm_to_device_sent(ghost.as_str(), txn_id).await.map_err(failed) },
        )
    }
}
