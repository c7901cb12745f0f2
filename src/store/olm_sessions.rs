//! Olm sessions and inbound Megolm sessions of ghost devices, sealed (migration 0020).
//!
//! A to-device message that opens an Olm session uses up one of the account's one-time keys,
//! and the room key it carries can be read only once: the homeserver forgets a to-device
//! message once the bridge answered its transaction. So what decrypting it changed (the
//! account, the Olm session, the room key) is written in one transaction
//! ([`Store::save_olm_step`]), under the account's version like every account save
//! ([`super::olm_accounts`]): all of it lands, or none.
//!
//! A step that opened a kept to-device message (migration 0023) marks it opened in the same
//! transaction, after checking it was still pending: a message is never opened twice.
//!
//! Migration 0021 keeps with each room key the user whose Olm message brought it, and the event
//! id decrypted at each message index ([`super::megolm_indices`]), so that an event is
//! believed only from the key's sender and a replayed ciphertext is told from the first.

use sqlx::Row as _;

use super::olm_accounts::save_account_on;
use super::to_device_inbox::{mark_opened_on, still_pending_on};
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
    /// The Matrix user whose Olm message brought it; empty if kept before migration 0021.
    pub sender_user: String,
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
    pub sender_user: String,
    pub sealed: Vec<u8>,
}

/// What one decrypted to-device message changed.
#[derive(Debug, Clone, Default)]
pub struct OlmStep {
    /// The account, if a one-time key was used.
    pub account: Option<OlmAccountSave>,
    pub sessions: Vec<OlmSessionSave>,
    pub room_keys: Vec<MegolmInboundSave>,
    /// The kept to-device message the step opened (migration 0023), marked opened with it.
    pub inbox_seq: Option<i64>,
    pub now_ms: i64,
}

/// Upserts Olm sessions: one statement per session on connection `$c`, for the
/// transactions that keep a session with what it carried (a room key received, a room key
/// shared). A macro for the same reason as `save_account_on!`: the two backends' connections
/// are different types.
macro_rules! save_olm_sessions_on {
    ($c:expr, $sessions:expr, $now_ms:expr) => {{
        const SESSION: &str = "INSERT INTO matrix_olm_sessions (user_id, sender_key, session_id, sealed, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, sender_key, session_id) \
             DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at";
        for session in $sessions {
            sqlx::query(SESSION)
                .bind(session.user_id.as_str())
                .bind(session.sender_key.as_str())
                .bind(session.session_id.as_str())
                .bind(session.sealed.as_slice())
                .bind($now_ms)
                .execute($c)
                .await?;
        }
    }};
}
pub(super) use save_olm_sessions_on;

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
        const SQL: &str = "SELECT sender_key, signing_key, sender_user, sealed FROM matrix_megolm_inbound \
             WHERE user_id = $1 AND room_id = $2 AND session_id = $3";
        on_pool!(self.pool(), p => match sqlx::query(SQL).bind(user_id).bind(room_id).bind(session_id).fetch_optional(p).await? {
            None => Ok(None),
            Some(row) => Ok(Some(MegolmInboundRow {
                sender_key: row.try_get("sender_key")?,
                signing_key: row.try_get("signing_key")?,
                sender_user: row.try_get("sender_user")?,
                sealed: row.try_get("sealed")?,
            })),
        })
    }

    /// Writes `step` in one transaction: `false` (and nothing written) if its account save
    /// found the row at another version.
    pub async fn save_olm_step(&self, step: OlmStep) -> Result<bool, StoreError> {
        // The first key kept for a session stays; one kept before its sender was recorded
        // (migration 0021) is replaced by the same key received again.
        const ROOM_KEY: &str = "INSERT INTO matrix_megolm_inbound \
             (user_id, room_id, session_id, sender_key, signing_key, sealed, created_at, sender_user) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (user_id, room_id, session_id) \
             DO UPDATE SET sender_key = excluded.sender_key, signing_key = excluded.signing_key, \
             sealed = excluded.sealed, sender_user = excluded.sender_user \
             WHERE matrix_megolm_inbound.sender_user = ''";
        write_on!(self, c => {
            // Checked before anything is written: a message opened already writes nothing.
            if let Some(seq) = step.inbox_seq
                && !still_pending_on!(c, seq)
            {
                return Ok(false);
            }
            if let Some(account) = &step.account
                && save_account_on!(&mut *c, account) != 1
            {
                return Ok(false);
            }
            if let Some(seq) = step.inbox_seq {
                mark_opened_on!(c, seq);
            }
            save_olm_sessions_on!(&mut *c, &step.sessions, step.now_ms);
            for key in &step.room_keys {
                sqlx::query(ROOM_KEY)
                    .bind(key.user_id.as_str())
                    .bind(key.room_id.as_str())
                    .bind(key.session_id.as_str())
                    .bind(key.sender_key.as_str())
                    .bind(key.signing_key.as_str())
                    .bind(key.sealed.as_slice())
                    .bind(step.now_ms)
                    .bind(key.sender_user.as_str())
                    .execute(&mut *c)
                    .await?;
            }
            Ok(true)
        })
    }
}
