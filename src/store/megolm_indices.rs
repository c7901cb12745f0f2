//! The message indices of each room key that were decrypted, and the event at each
//! (migrations 0021, 0024): a Megolm ciphertext posted again as another event (a replay) is
//! refused, and the record of them stays bounded.
//!
//! The first event decrypted at an index keeps it ([`Store::claim_megolm_index`]). Rows older
//! than the bridge keeps its keys, or more than [`MEGOLM_INDICES_KEPT_PER_KEY`] below the key's
//! highest index, are pruned ([`Store::prune_megolm_indices`]); the key's floor rises above
//! every pruned index first, in the same transaction, and every index under the floor counts
//! as decrypted. So pruning never lets a replay through: what it costs is that a message held
//! back longer than that (never decrypted, its index never claimed) is refused as a replay when
//! it finally opens, and its sender is told, as for any refusal.

use super::{Store, StoreError, write_on};

/// How many of a room key's highest indices keep their row; the rest are under the floor.
pub const MEGOLM_INDICES_KEPT_PER_KEY: i64 = 1000;

/// One message index of a room key, and the event decrypted there.
#[derive(Debug, Clone, Copy)]
pub struct MegolmIndex<'a> {
    pub user_id: &'a str,
    pub room_id: &'a str,
    pub session_id: &'a str,
    pub message_index: u32,
    pub event_id: &'a str,
}

impl Store {
    /// Keeps `event_id` as the event decrypted at `message_index` of a room key, unless another
    /// event was kept there first or the index is under the key's floor: whether the index is
    /// `event_id`'s (a replay of the same event is, a different event with the same ciphertext
    /// index is not).
    pub async fn claim_megolm_index(&self, index: &MegolmIndex<'_>, now_ms: i64) -> Result<bool, StoreError> {
        const FLOOR: &str = "SELECT floor FROM matrix_megolm_index_floors \
             WHERE user_id = $1 AND room_id = $2 AND session_id = $3";
        const INSERT: &str = "INSERT INTO matrix_megolm_indices \
             (user_id, room_id, session_id, message_index, event_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, room_id, session_id, message_index) DO NOTHING";
        const READ: &str = "SELECT event_id FROM matrix_megolm_indices \
             WHERE user_id = $1 AND room_id = $2 AND session_id = $3 AND message_index = $4";
        let message_index = i64::from(index.message_index);
        let [user_id, room_id, session_id, event_id] =
            [index.user_id, index.room_id, index.session_id, index.event_id].map(str::to_owned);
        write_on!(self, c => {
            let floor: Option<i64> = sqlx::query_scalar(FLOOR)
                .bind(user_id.as_str())
                .bind(room_id.as_str())
                .bind(session_id.as_str())
                .fetch_optional(&mut *c)
                .await?;
            if floor.is_some_and(|floor| message_index < floor) {
                return Ok(false);
            }
            sqlx::query(INSERT)
                .bind(user_id.as_str())
                .bind(room_id.as_str())
                .bind(session_id.as_str())
                .bind(message_index)
                .bind(event_id.as_str())
                .bind(now_ms)
                .execute(&mut *c)
                .await?;
            let kept: String = sqlx::query_scalar(READ)
                .bind(user_id.as_str())
                .bind(room_id.as_str())
                .bind(session_id.as_str())
                .bind(message_index)
                .fetch_one(&mut *c)
                .await?;
            Ok(kept == event_id)
        })
    }

    /// Prunes the indices decrypted before `before_ms` and those more than `kept_per_key` below
    /// their key's highest, raising each key's floor above them first: how many rows went.
    pub async fn prune_megolm_indices(&self, before_ms: i64, kept_per_key: i64) -> Result<u64, StoreError> {
        // The floor only rises (a CASE, as SQLite and PostgreSQL spell the larger of two alike).
        const FLOORS: &str = "INSERT INTO matrix_megolm_index_floors (user_id, room_id, session_id, floor) \
             SELECT i.user_id, i.room_id, i.session_id, MAX(i.message_index) + 1 FROM matrix_megolm_indices i \
             WHERE i.created_at < $1 OR i.message_index + $2 <= (SELECT MAX(j.message_index) \
                 FROM matrix_megolm_indices j WHERE j.user_id = i.user_id AND j.room_id = i.room_id \
                 AND j.session_id = i.session_id) \
             GROUP BY i.user_id, i.room_id, i.session_id \
             ON CONFLICT (user_id, room_id, session_id) DO UPDATE SET floor = CASE \
                 WHEN excluded.floor > matrix_megolm_index_floors.floor THEN excluded.floor \
                 ELSE matrix_megolm_index_floors.floor END";
        const UNDER: &str = "DELETE FROM matrix_megolm_indices WHERE message_index < (SELECT f.floor \
             FROM matrix_megolm_index_floors f WHERE f.user_id = matrix_megolm_indices.user_id \
             AND f.room_id = matrix_megolm_indices.room_id AND f.session_id = matrix_megolm_indices.session_id)";
        write_on!(self, c => {
            sqlx::query(FLOORS).bind(before_ms).bind(kept_per_key).execute(&mut *c).await?;
            Ok(sqlx::query(UNDER).execute(&mut *c).await?.rows_affected())
        })
    }
}
