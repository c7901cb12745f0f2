//! Olm sessions and inbound Megolm sessions of ghost devices, sealed (migration 0020).
//!
//! A to-device message that opens an Olm session uses up one of the account's one-time keys,
//! and the room key it carries can be read only once: the homeserver forgets a to-device
//! message once the bridge answered its transaction. So what decrypting it changed (the
//! account, the Olm session, the room key) is written in one transaction
//! ([`Store::save_olm_step`]), under the account's version like every account save
//! ([`super::olm_accounts`]): all of it lands, or none.

use sqlx::Row as _;

use super::olm_accounts::save_account_on;
use super::{OlmAccountSave, Store, StoreError, on_pool, write_on};

/// An Olm session, still sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OlmSessionRow {
    pub session_id: String,
    pub sealed: Vec<u8>,
}

/// A room key, still sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MegolmInboundRow {
    pub sender_key: String,
    pub signing_key: String,
    pub sealed: Vec<u8>,
}

/// An Olm session to write (new or advanced).
#[derive(Debug, Clone)]
pub struct OlmSessionSave {
    pub user_id: String,
    pub sender_key: String,
    pub session_id: String,
    pub sealed: Vec<u8>,
}

/// A room key to keep; the first one kept for a (ghost, room, session) stays.
#[derive(Debug, Clone)]
pub struct MegolmInboundSave {
    pub user_id: String,
    pub room_id: String,
    pub session_id: String,
    pub sender_key: String,
    pub signing_key: String,
    pub sealed: Vec<u8>,
}

/// What one decrypted to-device message changed.
#[derive(Debug, Clone, Default)]
pub struct OlmStep {
    /// The account, if a one-time key was used.
    pub account: Option<OlmAccountSave>,
    pub sessions: Vec<OlmSessionSave>,
    pub room_keys: Vec<MegolmInboundSave>,
    pub now_ms: i64,
}

impl Store {
    /// `user_id`'s Olm sessions with the device whose Curve25519 key is `sender_key`, the most
    /// recently used first.
    pub async fn olm_sessions(
        &self,
        user_id: &str,
        sender_key: &str,
    ) -> Result<Vec<OlmSessionRow>, StoreError> {
        const SQL: &str = "SELECT session_id, sealed FROM matrix_olm_sessions \
             WHERE user_id = $1 AND sender_key = $2 ORDER BY updated_at DESC LIMIT 16";
        on_pool!(self.pool(), p => {
            let rows = sqlx::query(SQL).bind(user_id).bind(sender_key).fetch_all(p).await?;
            rows.iter()
                .map(|row| Ok(OlmSessionRow { session_id: row.try_get("session_id")?, sealed: row.try_get("sealed")? }))
                .collect()
        })
    }

    /// The room key `session_id` of `room_id` that `user_id`'s device received, if it did.
    pub async fn megolm_inbound(
        &self,
        user_id: &str,
        room_id: &str,
        session_id: &str,
    ) -> Result<Option<MegolmInboundRow>, StoreError> {
        const SQL: &str = "SELECT sender_key, signing_key, sealed FROM matrix_megolm_inbound \
             WHERE user_id = $1 AND room_id = $2 AND session_id = $3";
        on_pool!(self.pool(), p => match sqlx::query(SQL).bind(user_id).bind(room_id).bind(session_id).fetch_optional(p).await? {
            None => Ok(None),
            Some(row) => Ok(Some(MegolmInboundRow {
                sender_key: row.try_get("sender_key")?,
                signing_key: row.try_get("signing_key")?,
                sealed: row.try_get("sealed")?,
            })),
        })
    }

    /// Writes `step` in one transaction: `false` (and nothing written) if its account save
    /// found the row at another version.
    pub async fn save_olm_step(&self, step: OlmStep) -> Result<bool, StoreError> {
        const SESSION: &str = "INSERT INTO matrix_olm_sessions (user_id, sender_key, session_id, sealed, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, sender_key, session_id) \
             DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at";
        const ROOM_KEY: &str = "INSERT INTO matrix_megolm_inbound \
             (user_id, room_id, session_id, sender_key, signing_key, sealed, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id, room_id, session_id) DO NOTHING";
        write_on!(self, c => {
            if let Some(account) = &step.account
                && save_account_on!(&mut *c, account) != 1
            {
                return Ok(false);
            }
            for session in &step.sessions {
                sqlx::query(SESSION)
                    .bind(session.user_id.as_str())
                    .bind(session.sender_key.as_str())
                    .bind(session.session_id.as_str())
                    .bind(session.sealed.as_slice())
                    .bind(step.now_ms)
                    .execute(&mut *c)
                    .await?;
            }
            for key in &step.room_keys {
                sqlx::query(ROOM_KEY)
                    .bind(key.user_id.as_str())
                    .bind(key.room_id.as_str())
                    .bind(key.session_id.as_str())
                    .bind(key.sender_key.as_str())
                    .bind(key.signing_key.as_str())
                    .bind(key.sealed.as_slice())
                    .bind(step.now_ms)
                    .execute(&mut *c)
                    .await?;
            }
            Ok(true)
        })
    }
}
