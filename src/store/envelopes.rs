//! Stored envelopes: kept for the receiver until acknowledged or expired.
//!
//! Behaviour matched to the reference DS (docs/protocol.md §9, §9.4, P24):
//! - Dedup by (receiver, message hash): the same message submitted twice (a retry, or the
//!   same copy relayed twice) is stored once and the second submit reports a duplicate.
//! - `GET incoming` returns envelopes newest first, grouped by conversation (one per sender).
//!   The reference caps at 101 conversations × 1001 messages (inclusive Redis ranges). We use
//!   the same numbers ([`IncomingLimits::REFERENCE`]) and pick the 101 conversations with the
//!   most recent activity, and within each the 1001 newest envelopes, so an answer is bounded
//!   and the client drains the rest by acknowledging what it got and asking again.
//! - Acknowledgement deletes by (receiver, sender, message hash), the `contactAddress` of the
//!   request being the sender's name (P8), [`ACKS_PER_STATEMENT`] per statement: a client may
//!   acknowledge a hundred thousand envelopes at once, and one statement each took seconds.
//! - Expiry: `expires_at` is fixed at insert (`received_at + TTL`, or none when the TTL is 0,
//!   which keeps an envelope until acknowledged). Expired envelopes are hidden from listings at
//!   once and deleted by [`Store::delete_expired`] in small batches, so cleanup never holds the
//!   write lock for long.
//!
//! Inserts go through the group-commit writer ([`super::writer`]), other writes through
//! [`write_on!`](super::write_on), reads directly on the pool.

use std::sync::LazyLock;

use dm3::ens::EnsName;
use dm3::message::MessageHash;
use sqlx::Row;

use super::{InvalidId, Store, StoreError, ids, on_pool, write_on};

/// Most acknowledgements deleted by one statement: 2 parameters each stays far below both
/// backends' parameter limits, and few distinct statement texts stay in the prepared-statement
/// cache.
pub const ACKS_PER_STATEMENT: usize = 64;

/// `DELETE_ACKED_SQL[n - 1]` deletes the envelopes of `n` acknowledgements of receiver `$1`.
static DELETE_ACKED_SQL: LazyLock<Vec<String>> =
    LazyLock::new(|| (1..=ACKS_PER_STATEMENT).map(delete_acked_sql).collect());

/// The hashes alone select rows through the `UNIQUE (receiver, message_hash)` index; the pairs
/// then keep only rows of the acknowledged sender.
fn delete_acked_sql(acks: usize) -> String {
    let hashes: Vec<String> = (0..acks).map(|i| format!("${}", 2 * i + 3)).collect();
    let pairs: Vec<String> = (0..acks).map(|i| format!("(${}, ${})", 2 * i + 2, 2 * i + 3)).collect();
    format!(
        "DELETE FROM envelopes WHERE receiver = $1 AND message_hash IN ({}) \
         AND (sender, message_hash) IN (VALUES {})",
        hashes.join(", "),
        pairs.join(", ")
    )
}

/// An envelope to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEnvelope {
    pub receiver: EnsName,
    pub sender: EnsName,
    pub message_hash: MessageHash,
    /// The envelope JSON text exactly as it will be returned to the receiver.
    pub envelope: String,
    pub received_at_ms: i64,
    /// `None`: kept until acknowledged.
    pub expires_at_ms: Option<i64>,
}

/// The outcome of an insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored now; durable once this is returned.
    New,
    /// The receiver already has an envelope with this message hash; nothing changed.
    Duplicate,
}

/// A stored envelope as listed for its receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEnvelope {
    pub id: i64,
    pub sender: EnsName,
    pub message_hash: MessageHash,
    pub envelope: String,
    pub received_at_ms: i64,
}

/// Bounds of one `incoming` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingLimits {
    pub conversations: u32,
    pub per_conversation: u32,
}

impl IncomingLimits {
    /// The reference DS's caps (docs/protocol.md P24).
    pub const REFERENCE: Self = Self { conversations: 101, per_conversation: 1001 };
}

/// One acknowledged envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    pub sender: EnsName,
    pub message_hash: MessageHash,
}

impl Acknowledgement {
    /// Longest `messageHash` text an acknowledgement may carry.
    pub const MAX_HASH_LEN: usize = 256;

    /// The acknowledgement of the envelope from `sender` whose hash a client wrote as `hash`.
    /// Text that is empty, unbounded or has whitespace or control characters is refused;
    /// other text that is not a message hash acknowledges nothing (`None`): no stored envelope
    /// has it, as every one is stored under a hash, and the reference DS, which compares the
    /// text, would delete nothing either.
    pub fn from_client(sender: EnsName, hash: &str) -> Result<Option<Self>, InvalidId> {
        Ok(Self::hash_from_client(hash)?.map(|message_hash| Self { sender, message_hash }))
    }

    /// The hash of [`from_client`](Self::from_client) alone.
    pub fn hash_from_client(hash: &str) -> Result<Option<MessageHash>, InvalidId> {
        ids::check("message hash", hash, Self::MAX_HASH_LEN, false)?;
        Ok(hash.parse().ok())
    }
}

/// Rows removed by [`Store::delete_expired`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    pub envelopes: u64,
    pub challenges: u64,
    pub sessions: u64,
}

/// Expired rows deleted per statement: short transactions keep the writer unblocked.
const EXPIRY_BATCH: i64 = 1_000;

impl Store {
    /// Stores an envelope unless the receiver already has one with its message hash.
    /// Returns only after the transaction that holds it committed.
    pub async fn insert_envelope(&self, envelope: NewEnvelope) -> Result<Inserted, StoreError> {
        self.writer().insert(envelope).await
    }

    /// The receiver's live envelopes, newest first, within `limits`.
    pub async fn list_incoming(
        &self,
        receiver: &EnsName,
        now_ms: i64,
        limits: IncomingLimits,
    ) -> Result<Vec<StoredEnvelope>, StoreError> {
        const SQL: &str = "\
            WITH live AS ( \
                SELECT id, sender, message_hash, envelope, received_at FROM envelopes \
                WHERE receiver = $1 AND (expires_at IS NULL OR expires_at > $2) \
            ), conversations AS ( \
                SELECT sender, MAX(received_at) AS last_at FROM live \
                GROUP BY sender ORDER BY last_at DESC, sender LIMIT $3 \
            ), ranked AS ( \
                SELECT live.id, live.sender, live.message_hash, live.envelope, live.received_at, \
                    ROW_NUMBER() OVER ( \
                        PARTITION BY live.sender ORDER BY live.received_at DESC, live.id DESC \
                    ) AS n \
                FROM live JOIN conversations ON conversations.sender = live.sender \
            ) \
            SELECT id, sender, message_hash, envelope, received_at FROM ranked \
            WHERE n <= $4 ORDER BY received_at DESC, id DESC";
        let rows = on_pool!(self.pool(), p => {
            let rows = sqlx::query(SQL)
                .bind(receiver.as_str())
                .bind(now_ms)
                .bind(i64::from(limits.conversations))
                .bind(i64::from(limits.per_conversation))
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.try_get::<i64, _>("id")?,
                        row.try_get::<String, _>("sender")?,
                        row.try_get::<String, _>("message_hash")?,
                        row.try_get::<String, _>("envelope")?,
                        row.try_get::<i64, _>("received_at")?,
                    ))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter()
            .map(|(id, sender, hash, envelope, received_at_ms)| {
                Ok(StoredEnvelope {
                    id,
                    sender: ids::stored_name(&sender)?,
                    message_hash: ids::stored_hash(&hash)?,
                    envelope,
                    received_at_ms,
                })
            })
            .collect()
    }

    /// Deletes the acknowledged envelopes of `receiver`, in one transaction; returns how many
    /// existed. Unknown acknowledgements are not an error: a client may acknowledge twice.
    pub async fn delete_acknowledged(
        &self,
        receiver: &EnsName,
        acks: &[Acknowledgement],
    ) -> Result<u64, StoreError> {
        if acks.is_empty() {
            return Ok(0);
        }
        let (receiver, acks) = (receiver.clone(), acks.to_vec());
        let deleted = write_on!(self, c => {
            let mut deleted = 0;
            for chunk in acks.chunks(ACKS_PER_STATEMENT) {
                let sql = DELETE_ACKED_SQL.get(chunk.len() - 1).map_or("", String::as_str);
                let mut query = sqlx::query(sql).bind(receiver.as_str());
                for ack in chunk {
                    query = query.bind(ack.sender.as_str()).bind(ack.message_hash.to_string());
                }
                deleted += query.execute(&mut *c).await?.rows_affected();
            }
            Ok(deleted)
        })?;
        Ok(deleted)
    }

    /// Deletes envelopes, challenges and sessions that expired by `now_ms`.
    pub async fn delete_expired(&self, now_ms: i64) -> Result<Expired, StoreError> {
        const SQL: &str = "DELETE FROM envelopes WHERE id IN ( \
             SELECT id FROM envelopes WHERE expires_at IS NOT NULL AND expires_at <= $1 LIMIT $2)";
        let mut envelopes = 0;
        loop {
            let deleted = write_on!(self, one_statement, c => Ok(sqlx::query(SQL)
                .bind(now_ms)
                .bind(EXPIRY_BATCH)
                .execute(&mut *c)
                .await?
                .rows_affected()))?;
            envelopes += deleted;
            if deleted < EXPIRY_BATCH.unsigned_abs() {
                break;
            }
        }
        let challenges = self.delete_expired_challenges(now_ms).await?;
        let sessions = self.delete_expired_sessions(now_ms).await?;
        Ok(Expired { envelopes, challenges, sessions })
    }

    /// How many envelopes are stored (expired but not yet deleted ones included).
    pub async fn count_envelopes(&self) -> Result<u64, StoreError> {
        const SQL: &str = "SELECT COUNT(*) AS n FROM envelopes";
        let n = on_pool!(self.pool(), p => sqlx::query(SQL)
            .fetch_one(p)
            .await?
            .try_get::<i64, _>("n")?);
        Ok(n.unsigned_abs())
    }
}
