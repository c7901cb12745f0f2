//! To-device messages for ghost devices kept until opened, and each device's catch-up token
//! (migration 0023): the rows behind the Matrix connector's `ToDeviceInbox`
//! ([`crate::bridges::matrix::to_device_inbox`]).
//!
//! A message is kept once per device and digest (the push and the catch-up bring the same one),
//! in arrival order (`seq`), and marked opened in the transaction of the Olm step that opened
//! it ([`Store::save_olm_step`]), so it is never opened twice. What a catch-up brought is
//! kept with its since token in one transaction: the homeserver deletes what came before a
//! token once it is used, so a token must never be ahead of what is kept.

use sqlx::Row as _;

use super::{Store, StoreError, on_pool, write_on};

/// A message to keep.
#[derive(Debug, Clone)]
pub struct ToDeviceKeep {
    pub user_id: String,
    pub device_id: String,
    pub digest: String,
    pub sender: String,
    pub event_type: String,
    /// The content's JSON as received.
    pub content: String,
    /// `push` or `catch_up`.
    pub via: &'static str,
}

/// A kept message not yet opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToDeviceRow {
    pub seq: i64,
    pub sender: String,
    pub event_type: String,
    pub content: String,
    pub via: String,
    pub attempts: i64,
    pub created_at: i64,
}

/// Settled rows are kept this long (they recognize a message the catch-up brings again), then
/// pruned.
pub const SETTLED_KEPT_MS: i64 = 24 * 3600 * 1000;

const KEEP: &str = "INSERT INTO matrix_to_device_inbox \
     (user_id, device_id, digest, sender, event_type, content, via, state, attempts, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8) ON CONFLICT (user_id, device_id, digest) DO NOTHING";

/// Inserts `$messages` on connection `$c`: how many were new.
macro_rules! keep_on {
    ($c:expr, $messages:expr, $now_ms:expr) => {{
        let mut new = 0u64;
        for m in $messages {
            new += sqlx::query(KEEP)
                .bind(m.user_id.as_str())
                .bind(m.device_id.as_str())
                .bind(m.digest.as_str())
                .bind(m.sender.as_str())
                .bind(m.event_type.as_str())
                .bind(m.content.as_str())
                .bind(m.via)
                .bind($now_ms)
                .execute(&mut *$c)
                .await?
                .rows_affected();
        }
        new
    }};
}

impl Store {
    /// Keeps `messages` unless kept before: how many were new.
    pub async fn keep_to_device(&self, messages: Vec<ToDeviceKeep>, now_ms: i64) -> Result<u64, StoreError> {
        write_on!(self, c => Ok(keep_on!(c, &messages, now_ms)))
    }

    /// Keeps what a catch-up of a device brought and its next since token, in one transaction.
    pub async fn keep_caught_up(
        &self,
        user_id: &str,
        device_id: &str,
        messages: Vec<ToDeviceKeep>,
        next_batch: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        const SINCE: &str = "INSERT INTO matrix_to_device_since (user_id, device_id, next_batch, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, device_id) \
             DO UPDATE SET next_batch = excluded.next_batch, updated_at = excluded.updated_at";
        let (user_id, device_id, next_batch) =
            (user_id.to_owned(), device_id.to_owned(), next_batch.to_owned());
        write_on!(self, c => {
            let new = keep_on!(c, &messages, now_ms);
            sqlx::query(SINCE)
                .bind(user_id.as_str())
                .bind(device_id.as_str())
                .bind(next_batch.as_str())
                .bind(now_ms)
                .execute(&mut *c)
                .await?;
            Ok(new)
        })
    }

    /// The since token of a device's last catch-up.
    pub async fn to_device_since(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<Option<String>, StoreError> {
        const SQL: &str =
            "SELECT next_batch FROM matrix_to_device_since WHERE user_id = $1 AND device_id = $2";
        on_pool!(self.pool(), p => Ok(sqlx::query_scalar(SQL).bind(user_id).bind(device_id).fetch_optional(p).await?))
    }

    /// Devices with pending messages, at most `limit`, those waiting longest first.
    pub async fn to_device_pending_devices(&self, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        const SQL: &str = "SELECT user_id, device_id, MIN(seq) AS first FROM matrix_to_device_inbox \
             WHERE state = 'pending' GROUP BY user_id, device_id ORDER BY first LIMIT $1";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        on_pool!(self.pool(), p => {
            let rows = sqlx::query(SQL).bind(limit).fetch_all(p).await?;
            rows.iter().map(|row| Ok((row.try_get("user_id")?, row.try_get("device_id")?))).collect()
        })
    }

    /// A device's pending messages in arrival order, at most `limit`.
    pub async fn to_device_pending(
        &self,
        user_id: &str,
        device_id: &str,
        limit: usize,
    ) -> Result<Vec<ToDeviceRow>, StoreError> {
        const SQL: &str = "SELECT seq, sender, event_type, content, via, attempts, created_at \
             FROM matrix_to_device_inbox WHERE state = 'pending' AND user_id = $1 AND device_id = $2 \
             ORDER BY seq LIMIT $3";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        on_pool!(self.pool(), p => {
            let rows = sqlx::query(SQL).bind(user_id).bind(device_id).bind(limit).fetch_all(p).await?;
            rows.iter()
                .map(|row| {
                    Ok(ToDeviceRow {
                        seq: row.try_get("seq")?,
                        sender: row.try_get("sender")?,
                        event_type: row.try_get("event_type")?,
                        content: row.try_get("content")?,
                        via: row.try_get("via")?,
                        attempts: row.try_get("attempts")?,
                        created_at: row.try_get("created_at")?,
                    })
                })
                .collect()
        })
    }

    /// A pending message tried once more without opening (`dropped`: it never will).
    pub async fn settle_to_device(&self, seq: i64, dropped: bool) -> Result<(), StoreError> {
        const RETRY: &str =
            "UPDATE matrix_to_device_inbox SET attempts = attempts + 1 WHERE seq = $1 AND state = 'pending'";
        const DROP: &str = "UPDATE matrix_to_device_inbox SET state = 'dropped', attempts = attempts + 1 \
             WHERE seq = $1 AND state = 'pending'";
        let sql = if dropped { DROP } else { RETRY };
        write_on!(self, one_statement, c => {
            sqlx::query(sql).bind(seq).execute(&mut *c).await?;
            Ok(())
        })
    }

    /// Forgets settled messages kept before `before_ms`: how many.
    pub async fn prune_to_device(&self, before_ms: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM matrix_to_device_inbox WHERE state <> 'pending' AND created_at < $1";
        write_on!(self, one_statement, c => Ok(sqlx::query(SQL).bind(before_ms).execute(&mut *c).await?.rows_affected()))
    }
}

/// Marks the kept message `$seq` opened on `$c`, in an Olm step's transaction: whether it was
/// still pending (if not, the step must write nothing: it was opened already).
macro_rules! still_pending_on {
    ($c:expr, $seq:expr) => {{
        const STATE: &str = "SELECT state FROM matrix_to_device_inbox WHERE seq = $1";
        let state: Option<String> = sqlx::query_scalar(STATE).bind($seq).fetch_optional(&mut *$c).await?;
        state.as_deref() == Some("pending")
    }};
}
pub(super) use still_pending_on;

/// Marks the kept message `$seq` opened on `$c`.
macro_rules! mark_opened_on {
    ($c:expr, $seq:expr) => {{
        const OPENED: &str = "UPDATE matrix_to_device_inbox SET state = 'opened' WHERE seq = $1";
        sqlx::query(OPENED).bind($seq).execute(&mut *$c).await?;
    }};
}
pub(super) use mark_opened_on;
