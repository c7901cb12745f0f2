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
//! The check and the insert are one write: on SQLite the single write connection runs them with
//! no other write between, so the cap is exact; on PostgreSQL they are one transaction at READ
//! COMMITTED, and submits to the same conversation that commit at the same moment may each see
//! the count below the cap, so the cap can be passed by at most the number of such concurrent
//! submits (bounded by the connection pool). That is enough for a bound on a flood, and avoids a
//! lock per conversation. The count is bounded by the cap itself (`LIMIT`) over the partial index
//! of pending jobs by conversation, so it costs at most `cap` index entries, whatever the
//! backlog.

use sqlx::Row;

use super::{INSERT_JOB, NewJob, check_job};
use crate::store::{Store, StoreError, write_on};

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
    /// to retry again. See the module documentation for the exactness of the cap.
    pub async fn enqueue_job_capped(
        &self,
        job: &NewJob,
        now_ms: i64,
        cap: u64,
    ) -> Result<CappedInsert, StoreError> {
        check_job(job)?;
        let job = job.clone();
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        write_on!(self, c => {
            let seen = sqlx::query(KEY_SEEN)
                .bind(job.queue.as_str())
                .bind(job.idempotency_key.as_str())
                .fetch_optional(&mut *c)
                .await?;
            if seen.is_some() {
                return Ok(CappedInsert::Duplicate);
            }
            let pending = sqlx::query(PENDING_UP_TO)
                .bind(job.queue.as_str())
                .bind(job.conversation.as_str())
                .bind(cap)
                .fetch_one(&mut *c)
                .await?
                .try_get::<i64, _>("n")?
                .unsigned_abs();
            if pending >= cap.unsigned_abs() {
                return Ok(CappedInsert::Full);
            }
            let inserted = insert_job!(c, job, now_ms);
            // 0: another transaction queued the same key since the check (PostgreSQL).
            Ok(if inserted == 1 { CappedInsert::New { pending: pending + 1 } } else { CappedInsert::Duplicate })
        })
    }

    /// Deletes failed jobs that finished before `finished_before_ms`; returns how many. Their
    /// payload went when they failed; their key, conversation and `last_error` stay until
    /// then, for the operator to see why.
    pub async fn prune_failed_jobs(&self, finished_before_ms: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM bridge_jobs WHERE id IN ( \
             SELECT id FROM bridge_jobs WHERE state = 'failed' AND finished_at < $1 LIMIT $2)";
        self.delete_in_batches(SQL, finished_before_ms).await
    }
}
