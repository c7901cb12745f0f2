//! Outbound Megolm sessions of ghost devices, sealed, with the devices they were shared with
//! and the room keys not yet sent (migration 0022).
//!
//! An encrypted send changes the group session's ratchet, the Olm sessions that carry its key,
//! the set of devices holding it and the room keys to send; all of it is written in one
//! transaction ([`Store::save_megolm_step`]), under the ghost's account version like every
//! step of its crypto state ([`super::olm_accounts`]), and before anything made from it is sent
//! (docs/engine.md, "Encrypted rooms: plan").

use sqlx::Row as _;

use super::olm_accounts::save_account_on;
use super::olm_sessions::save_olm_sessions_on;
use super::{OlmAccountSave, OlmSessionSave, Store, StoreError, on_pool, write_on};

/// A room's outbound session, still sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MegolmOutboundRow {
    pub session_id: String,
    pub sealed: Vec<u8>,
    pub created_at: i64,
    pub messages: i64,
    /// (user, device, Curve25519 key) of each device it was shared with.
    pub shared: Vec<(String, String, String)>,
}

/// The session to write over the room's row.
#[derive(Debug, Clone)]
pub struct MegolmOutboundSave {
    pub session_id: String,
    pub sealed: Vec<u8>,
    pub created_at: i64,
    pub messages: i64,
}

/// What one encrypted send changed.
#[derive(Debug, Clone)]
pub struct MegolmStep {
    pub account: OlmAccountSave,
    pub room_id: String,
    pub session: MegolmOutboundSave,
    pub olm_sessions: Vec<OlmSessionSave>,
    /// (user, device, Curve25519 key) of each device now holding the key.
    pub shared: Vec<(String, String, String)>,
    /// (txn id, body) of the room keys to send.
    pub pending: Option<(String, String)>,
    pub now_ms: i64,
}

impl Store {
    /// `user_id`'s outbound session in `room_id`, with the devices it was shared with.
    pub async fn megolm_outbound(
        &self,
        user_id: &str,
        room_id: &str,
    ) -> Result<Option<MegolmOutboundRow>, StoreError> {
        const SESSION: &str = "SELECT session_id, sealed, created_at, messages FROM matrix_megolm_outbound \
             WHERE user_id = $1 AND room_id = $2";
        const SHARED: &str = "SELECT target_user, target_device, target_key FROM matrix_megolm_shared \
             WHERE user_id = $1 AND room_id = $2 AND session_id = $3 ORDER BY target_user, target_device";
        on_pool!(self.pool(), p => {
            let Some(row) = sqlx::query(SESSION).bind(user_id).bind(room_id).fetch_optional(p).await? else {
                return Ok(None);
            };
            let session_id: String = row.try_get("session_id")?;
            let shared = sqlx::query(SHARED).bind(user_id).bind(room_id).bind(session_id.as_str()).fetch_all(p).await?;
            let shared = shared
                .iter()
                .map(|r| Ok((r.try_get("target_user")?, r.try_get("target_device")?, r.try_get("target_key")?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            Ok(Some(MegolmOutboundRow {
                session_id,
                sealed: row.try_get("sealed")?,
                created_at: row.try_get("created_at")?,
                messages: row.try_get("messages")?,
                shared,
            }))
        })
    }

    /// (txn id, body) of `user_id`'s room keys in `room_id` not yet sent, oldest first.
    pub async fn megolm_pending(
        &self,
        user_id: &str,
        room_id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        const SQL: &str = "SELECT txn_id, body FROM matrix_megolm_pending \
             WHERE user_id = $1 AND room_id = $2 ORDER BY created_at, txn_id";
        on_pool!(self.pool(), p => {
            let rows = sqlx::query(SQL).bind(user_id).bind(room_id).fetch_all(p).await?;
            rows.iter().map(|r| Ok((r.try_get("txn_id")?, r.try_get("body")?))).collect()
        })
    }

    /// Forgets a pending room-key send the homeserver acknowledged.
    pub async fn megolm_to_device_sent(&self, user_id: &str, txn_id: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM matrix_megolm_pending WHERE user_id = $1 AND txn_id = $2";
        let (user_id, txn_id) = (user_id.to_owned(), txn_id.to_owned());
        write_on!(self, one_statement, c => {
            sqlx::query(SQL).bind(user_id.as_str()).bind(txn_id.as_str()).execute(&mut *c).await?;
            Ok(())
        })
    }

    /// Writes `step` in one transaction: `false` (and nothing written) if its account save
    /// found the row at another version.
    pub async fn save_megolm_step(&self, step: MegolmStep) -> Result<bool, StoreError> {
        const FORGET_SHARES: &str = "DELETE FROM matrix_megolm_shared \
             WHERE user_id = $1 AND room_id = $2 AND session_id <> $3";
        const SESSION: &str = "INSERT INTO matrix_megolm_outbound \
             (user_id, room_id, session_id, sealed, created_at, messages, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (user_id, room_id) DO UPDATE SET session_id = excluded.session_id, sealed = excluded.sealed, \
             created_at = excluded.created_at, messages = excluded.messages, updated_at = excluded.updated_at";
        const SHARED: &str = "INSERT INTO matrix_megolm_shared \
             (user_id, room_id, session_id, target_user, target_device, target_key) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (user_id, room_id, session_id, target_user, target_device) DO UPDATE SET target_key = excluded.target_key";
        const PENDING: &str = "INSERT INTO matrix_megolm_pending (user_id, room_id, txn_id, body, created_at) \
             VALUES ($1, $2, $3, $4, $5)";
        write_on!(self, c => {
            let user_id = step.account.user_id.as_str();
            if save_account_on!(&mut *c, &step.account) != 1 {
                return Ok(false);
            }
            sqlx::query(FORGET_SHARES).bind(user_id).bind(step.room_id.as_str()).bind(step.session.session_id.as_str())
                .execute(&mut *c).await?;
            sqlx::query(SESSION)
                .bind(user_id)
                .bind(step.room_id.as_str())
                .bind(step.session.session_id.as_str())
                .bind(step.session.sealed.as_slice())
                .bind(step.session.created_at)
                .bind(step.session.messages)
                .bind(step.now_ms)
                .execute(&mut *c)
                .await?;
            save_olm_sessions_on!(&mut *c, &step.olm_sessions, step.now_ms);
            for (user, device, key) in &step.shared {
                sqlx::query(SHARED)
                    .bind(user_id)
                    .bind(step.room_id.as_str())
                    .bind(step.session.session_id.as_str())
                    .bind(user.as_str())
                    .bind(device.as_str())
                    .bind(key.as_str())
                    .execute(&mut *c)
                    .await?;
            }
            if let Some((txn_id, body)) = &step.pending {
                sqlx::query(PENDING)
                    .bind(user_id)
                    .bind(step.room_id.as_str())
                    .bind(txn_id.as_str())
                    .bind(body.as_str())
                    .bind(step.now_ms)
                    .execute(&mut *c)
                    .await?;
            }
            Ok(true)
        })
    }
}
