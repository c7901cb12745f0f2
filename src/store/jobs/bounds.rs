//! The bounds of the job queues: how much one conversation may have waiting, and how long
//! failed jobs are kept (docs/engine.md, "Bounds").
//!
//! A flood from one DM3 sender to one virtual identity was accepted as fast as it came (2,000
//! envelopes in ~3 s) and then drained at the network's pace (Telegram: one message a second
//! per chat, a 33-minute backlog with every later message of the chat behind it). So the inbox
//! takes a new job only while its conversation has fewer than a cap pending
//! ([`Store::enqueue_job_capped`]); beyond, the sender is told to retry later and nothing already
//! accepted is touched.
//!
//! The count is read first, on the read pool, and the insert is then one statement of the
//! writer, as an uncapped enqueue is: on SQLite every write of the node goes through one
//! connection, and a count and a savepoint there per submit cost the whole node's throughput
//! (measured: a third of the engine's DM3 → Matrix rate, docs/benchmarks.md). So submits to the
//! same conversation that run at the same moment may each see the count below the cap, and the
//! cap can be passed by at most the number of such concurrent submits (bounded by the
//! connection limits), on either backend. That is enough for a bound on a flood, and avoids a
//! lock per conversation. The count is bounded by the cap itself (`LIMIT`) over the partial
//! index of pending jobs by conversation, so it costs at most `cap` index entries, whatever the
//! backlog.

use sqlx::Row;

use super::{INSERT_JOB, NewJob, check_job};
use crate::store::{Store, StoreError, on_pool, write_on};

/// What [`Store::enqueue_job_capped`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CappedInsert {
    /// Queued; `pending` is how many jobs of its conversation are pending now, this one
    /// included.
    New { pending: u64 },
    /// Its key was seen: queued before (whatever the count now).
    Duplicate,
    /// Not queued: the conversation has `cap` jobs pending already.
    Full,
}

const KEY_SEEN: &str = "SELECT 1 FROM bridge_jobs WHERE queue = $1 AND idempotency_key = $2";

/// The conversation's pending jobs, counted up to `$3`; the literal `state = 'pending'` lets the
/// planner use the partial index on `(queue, conversation, id)`.
const PENDING_UP_TO: &str = "SELECT COUNT(*) AS n FROM ( \
     SELECT 1 FROM bridge_jobs WHERE queue = $1 AND state = 'pending' AND conversation = $2 \
     LIMIT $3) AS capped";

impl Store {
    /// Queues `job` unless its key was seen or its conversation has `cap` jobs pending already;
    /// returns only after the commit. A job whose key was seen is a duplicate even when the
    /// conversation is full: a sender's retry of an envelope that was accepted must not be told
    /// to retry again. See the module documentation for how exact the cap is.
    pub async fn enqueue_job_capped(
        &self,
        job: &NewJob,
        now_ms: i64,
        cap: u64,
    ) -> Result<CappedInsert, StoreError> {
        check_job(job)?;
        let limit = i64::try_from(cap).unwrap_or(i64::MAX);
        let pending = on_pool!(self.pool(), p => {
            sqlx::query(PENDING_UP_TO)
                .bind(job.queue.as_str())
                .bind(job.conversation.as_str())
                .bind(limit)
                .fetch_one(p)
                .await?
                .try_get::<i64, _>("n")?
                .unsigned_abs()
        });
        if pending >= cap {
            // Full, unless this is a retry of a job that was queued: that one was accepted.
            let seen = on_pool!(self.pool(), p => {
                sqlx::query(KEY_SEEN)
                    .bind(job.queue.as_str())
                    .bind(job.idempotency_key.as_str())
                    .fetch_optional(p)
                    .await?
                    .is_some()
            });
            return Ok(if seen { CappedInsert::Duplicate } else { CappedInsert::Full });
        }
        let owned = job.clone();
        let inserted = write_on!(self, one_statement, c => Ok(insert_job!(c, owned, now_ms)))?;
        Ok(if inserted == 1 { CappedInsert::New { pending: pending + 1 } } else { CappedInsert::Duplicate })
    }

    /// Deletes failed jobs that finished before `finished_before_ms`; returns how many. Until
    /// then they keep their key, conversation, `last_error` (for the operator to see why) and
    /// payload (for an admin to retry them); this is what bounds the room they take.
    pub async fn prune_failed_jobs(&self, finished_before_ms: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM bridge_jobs WHERE id IN ( \
             SELECT id FROM bridge_jobs WHERE state = 'failed' AND finished_at < $1 LIMIT $2)";
        self.delete_in_batches(SQL, finished_before_ms).await
    }
}
