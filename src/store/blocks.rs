//! Blocks: the DM3 senders a bridged user refused (migration 0011, docs/relay.md "Block and
//! rate limits").
//!
//! A block is keyed by the virtual identity (the network user's DM3 name, the receiver of the
//! envelopes) and the DM3 sender's name, both normalized, so the relay's submit checks it with
//! the two names it has already read from the delivery information, before anything is queued.
//! It lives in the database, not in memory: a block must outlive a restart and hold on every
//! replica of the node at once.
//!
//! Each identity holds at most [`MAX_BLOCKS_PER_IDENTITY`] blocks: the list is the network
//! user's input, and a user who blocks a stream of fresh names must not grow a table without
//! bound. Blocking the same sender again, or unblocking one not blocked, changes nothing and is
//! no error (a Telegram update may be served twice).

use dm3::ens::EnsName;
use sqlx::Row;

use super::{Store, StoreError, on_pool, write_on};

/// The most senders one identity may block.
pub const MAX_BLOCKS_PER_IDENTITY: u64 = 1_000;

/// What a block request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// The sender is blocked now (and was not before).
    New,
    /// The sender was blocked already.
    Already,
    /// The identity blocks [`MAX_BLOCKS_PER_IDENTITY`] senders already: nothing was written.
    Full,
}

impl Store {
    /// Blocks `sender` for `identity`, within [`MAX_BLOCKS_PER_IDENTITY`].
    pub async fn block_sender(
        &self,
        identity: &EnsName,
        sender: &EnsName,
        now_ms: i64,
    ) -> Result<Blocked, StoreError> {
        const EXISTS: &str = "SELECT 1 AS one FROM blocked_senders WHERE identity = $1 AND sender = $2";
        const COUNT: &str = "SELECT COUNT(*) AS n FROM blocked_senders WHERE identity = $1";
        const INSERT: &str = "INSERT INTO blocked_senders (identity, sender, blocked_at) VALUES ($1, $2, $3) \
             ON CONFLICT (identity, sender) DO NOTHING";
        let (identity, sender) = (identity.clone(), sender.clone());
        write_on!(self, c => {
            let exists = sqlx::query(EXISTS)
                .bind(identity.as_str())
                .bind(sender.as_str())
                .fetch_optional(&mut *c)
                .await?
                .is_some();
            if exists {
                return Ok(Blocked::Already);
            }
            let count: i64 = sqlx::query(COUNT).bind(identity.as_str()).fetch_one(&mut *c).await?.try_get("n")?;
            if u64::try_from(count).unwrap_or(u64::MAX) >= MAX_BLOCKS_PER_IDENTITY {
                return Ok(Blocked::Full);
            }
            let inserted = sqlx::query(INSERT)
                .bind(identity.as_str())
                .bind(sender.as_str())
                .bind(now_ms)
                .execute(&mut *c)
                .await?
                .rows_affected();
            Ok(if inserted == 1 { Blocked::New } else { Blocked::Already })
        })
    }

    /// Lifts the block of `sender` for `identity`; `false` if there was none.
    pub async fn unblock_sender(&self, identity: &EnsName, sender: &EnsName) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM blocked_senders WHERE identity = $1 AND sender = $2";
        let (identity, sender) = (identity.clone(), sender.clone());
        let n = write_on!(self, one_statement, c => Ok(sqlx::query(SQL)
            .bind(identity.as_str())
            .bind(sender.as_str())
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        Ok(n > 0)
    }

    /// Whether `identity` blocks `sender`: one primary-key lookup, on the submit's path.
    pub async fn is_blocked(&self, identity: &EnsName, sender: &EnsName) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT 1 AS one FROM blocked_senders WHERE identity = $1 AND sender = $2";
        let found = on_pool!(self.pool(), p => sqlx::query(SQL)
            .bind(identity.as_str())
            .bind(sender.as_str())
            .fetch_optional(p)
            .await?
            .is_some());
        Ok(found)
    }
}
