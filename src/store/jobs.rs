//! The engine's durable job queues: the inbox (DM3 → network) and the outbox (network → DM3).
//!
//! One table, `bridge_jobs`, holds both (docs/engine.md). What the queue promises:
//! - **Once**: a job's idempotency key is unique in its queue, and a batch key is remembered in
//!   `inbound_batches` in the same transaction as the batch's jobs, so a replayed batch or job
//!   is a [`Inserted::Duplicate`], never a second job and never an error. Keys are free text:
//!   they are the engine's own (`matrix:$event`), not a network's transaction ids.
//! - **In order**: within a queue and conversation, jobs run in `id` order, one at a time. A
//!   claim takes only *heads*: pending jobs with no older pending job in their conversation.
//!   A running job is still pending (it holds a lease), so its successor is not a head until
//!   it is done or failed.
//! - **No lost work**: a claim sets `lease_until`; a running worker renews it
//!   ([`Store::renew_lease`]), so a short lease serves a long send, and a worker that dies
//!   leaves the lease to run out within that short time and the job is claimed again. The lease is also the fence: an outcome is applied only
//!   if the job still holds the lease its worker got ([`Lease`]), so a worker that overran its
//!   lease cannot overwrite the outcome of the worker that took the job over. A new lease always
//!   ends later than the one it replaces (it starts after that one ran out), so two claims
//!   never share a `lease_until`.
//! - **One claimant**: on PostgreSQL the claim locks its rows `FOR UPDATE SKIP LOCKED`, so
//!   replicas claiming at once take disjoint jobs; on SQLite the claim is one `UPDATE …
//!   RETURNING`, which holds the database's single write lock from its first read.
//!
//! Jobs inserted concurrently on PostgreSQL may commit out of `id` order; jobs of one
//! conversation that were enqueued concurrently have no order to keep, so this is harmless.
//!
//! `attempts` counts claims, not outcomes: a job that crashes its worker still counts up, so
//! backoff grows and the operator can see it. Done and failed jobs keep their key (to
//! deduplicate replays), conversation and `last_error` (for the operator); done jobs drop their
//! payload, failed ones keep it for an admin's retry ([`admin`]), until [`Store::prune_done_jobs`] and [`Store::prune_failed_jobs`] remove them after
//! the time they are kept. The bounds of a conversation's backlog are in [`bounds`].

use std::fmt;

use dm3_bridge_connector::NetworkId;
use sqlx::Row;

use super::message_map::insert_mapping;
use super::{Inserted, NewMapping, Store, StoreError, ids, on_pool, write_on};

/// Which queue a job is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueName {
    /// DM3 → network: envelopes for virtual identities, to be delivered by a connector.
    Inbox,
    /// Network → DM3: what connectors received, to be sent as DM3 messages.
    Outbox,
}

impl QueueName {
    pub const ALL: [QueueName; 2] = [QueueName::Inbox, QueueName::Outbox];

    /// The stored form, also the `queue` label of the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Inbox => "inbox",
            QueueName::Outbox => "outbox",
        }
    }

    fn parse(stored: &str) -> Result<Self, StoreError> {
        match stored {
            "inbox" => Ok(QueueName::Inbox),
            "outbox" => Ok(QueueName::Outbox),
            other => Err(StoreError::Corrupt(format!("unknown queue {other:?}"))),
        }
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The row id of a job; ascending ids are the order of arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(i64);

impl JobId {
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting, retrying or running (a running job holds a lease).
    Pending,
    Done,
    /// Given up; `last_error` says why.
    Failed,
}

impl JobState {
    /// The stored form, also the `state` label of the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    fn parse(stored: &str) -> Result<Self, StoreError> {
        match stored {
            "pending" => Ok(JobState::Pending),
            "done" => Ok(JobState::Done),
            "failed" => Ok(JobState::Failed),
            other => Err(StoreError::Corrupt(format!("unknown job state {other:?}"))),
        }
    }
}

/// Longest idempotency key, conversation or batch key accepted, in bytes. Generous: an engine
/// key joins a network id and two network ids of up to 255 bytes each.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest `last_error` kept, in bytes; longer reasons are cut (they come from networks).
pub const MAX_ERROR_BYTES: usize = 1024;

/// A job to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub queue: QueueName,
    /// Unique in its queue: a second job with this key is a duplicate.
    pub idempotency_key: String,
    /// The unit of ordering: jobs of one conversation run one at a time, in order.
    pub conversation: String,
    /// JSON text written by the producer; the queue never reads it.
    pub payload: String,
    /// The message's TTL: a job still pending at this time fails instead of retrying.
    pub expires_at_ms: Option<i64>,
}

/// The key of an inbound batch: the network and the delivery id it gave the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchKey {
    pub network: NetworkId,
    /// A Matrix `<scope>.<txnId>`, a Telegram `update-<id>`.
    pub key: String,
}

/// A claim on a job: the job's id and the end of the lease its worker got. Outcomes are
/// applied only while the job still holds this lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub id: JobId,
    pub until_ms: i64,
}

/// A job handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub id: JobId,
    pub queue: QueueName,
    pub idempotency_key: String,
    pub conversation: String,
    pub payload: String,
    /// Which run this is: 1 the first time, counting runs that crashed.
    pub attempt: u32,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub lease_until_ms: i64,
    /// Why the previous attempt did not finish, if it said.
    pub last_error: Option<String>,
}

impl ClaimedJob {
    pub fn lease(&self) -> Lease {
        Lease { id: self.id, until_ms: self.lease_until_ms }
    }

    /// Whether the message's TTL has passed at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_some_and(|expires| expires <= now_ms)
    }
}

/// What completing a job wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// `false`: the lease was lost (the job was claimed again after it ran out) and nothing
    /// changed.
    pub settled: bool,
    /// The next head of the job's conversation, claimed in the same commit, if asked for.
    pub next: Option<ClaimedJob>,
}

/// Which head to claim with a completion.
struct NextOf {
    queue: QueueName,
    conversation: String,
    lease_until_ms: i64,
}

/// A job as stored, whatever its state (for inspection and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: JobId,
    pub queue: QueueName,
    pub idempotency_key: String,
    pub conversation: String,
    /// Empty once the job is done (and for jobs that failed before migration 0010 dropped it).
    pub payload: String,
    pub state: JobState,
    pub attempts: u32,
    pub next_attempt_at_ms: i64,
    pub lease_until_ms: Option<i64>,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

/// How many jobs a queue holds in one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobCount {
    pub queue: QueueName,
    pub state: JobState,
    pub count: u64,
}

/// How many jobs an enqueue added to each queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NewJobs {
    pub inbox: u64,
    pub outbox: u64,
}

impl NewJobs {
    fn add(&mut self, queue: QueueName, count: u64) {
        match queue {
            QueueName::Inbox => self.inbox += count,
            QueueName::Outbox => self.outbox += count,
        }
    }

    pub fn of(&self, queue: QueueName) -> u64 {
        match queue {
            QueueName::Inbox => self.inbox,
            QueueName::Outbox => self.outbox,
        }
    }

    pub fn total(&self) -> u64 {
        self.inbox + self.outbox
    }
}

/// Rows deleted per statement by the pruning: short transactions keep the writer unblocked.
const PRUNE_BATCH: i64 = 1_000;

const INSERT_BATCH_KEY: &str = "INSERT INTO inbound_batches (network, batch_key, received_at) \
     VALUES ($1, $2, $3) ON CONFLICT (network, batch_key) DO NOTHING";

const INSERT_JOB: &str = "INSERT INTO bridge_jobs \
     (queue, idempotency_key, conversation, payload, state, attempts, next_attempt_at, \
      lease_until, last_error, created_at, updated_at, expires_at, finished_at) \
     VALUES ($1, $2, $3, $4, 'pending', 0, $5, NULL, NULL, $5, $5, $6, NULL) \
     ON CONFLICT (queue, idempotency_key) DO NOTHING";

/// Inserts the `NewJob` `$job` at `$now_ms` on `$c` inside a write; evaluates to the rows
/// inserted (0: its key was seen).
macro_rules! insert_job {
    ($c:expr, $job:expr, $now_ms:expr) => {
        sqlx::query(INSERT_JOB)
            .bind($job.queue.as_str())
            .bind($job.idempotency_key.as_str())
            .bind($job.conversation.as_str())
            .bind($job.payload.as_str())
            .bind($now_ms)
            .bind($job.expires_at_ms)
            .execute(&mut *$c)
            .await?
            .rows_affected()
    };
}

/// The heads of a queue that are due and not leased, oldest first. Shared by both claims; the
/// literal `state = 'pending'` lets both planners use the partial indexes.
macro_rules! heads_sql {
    ($lock:literal) => {
        concat!(
            "SELECT j.id FROM bridge_jobs j \
             WHERE j.queue = $1 AND j.state = 'pending' AND j.next_attempt_at <= $2 \
               AND (j.lease_until IS NULL OR j.lease_until <= $2) \
               AND NOT EXISTS ( \
                   SELECT 1 FROM bridge_jobs older \
                   WHERE older.queue = j.queue AND older.conversation = j.conversation \
                     AND older.state = 'pending' AND older.id < j.id) \
             ORDER BY j.id LIMIT $4 ",
            $lock
        )
    };
}

/// SQLite: one statement, so the read of the heads and the update happen under the single
/// write lock, which the statement takes before it reads anything.
///
/// The heads are found by skipping through the partial index on `(queue, conversation, id)`:
/// the first pending conversation, then the next one after it, and so on (a recursive CTE, as
/// SQLite has no loose index scan), each conversation's head its smallest id. That is one
/// index seek per conversation with pending work, however long the backlog behind the heads.
/// The forms before read more: every pending job probed for an older one (reading each
/// pending row, payload included: ~12 ms of node CPU per message with 2,000 jobs queued), then
/// `MIN(id) … GROUP BY conversation`, which still walks every pending index entry (1.8 ms per
/// claim with 5,000 queued; this form 0.2 ms; benches/bridge_load.rs, docs/benchmarks.md).
const CLAIM_SQLITE: &str = "UPDATE bridge_jobs SET lease_until = $3, attempts = attempts + 1, updated_at = $2 \
     WHERE id IN ( \
         WITH RECURSIVE conversations(conversation) AS ( \
             SELECT (SELECT conversation FROM bridge_jobs WHERE queue = $1 AND state = 'pending' \
                     ORDER BY conversation LIMIT 1) \
             UNION ALL \
             SELECT (SELECT b.conversation FROM bridge_jobs b \
                     WHERE b.queue = $1 AND b.state = 'pending' AND b.conversation > c.conversation \
                     ORDER BY b.conversation LIMIT 1) \
             FROM conversations c WHERE c.conversation IS NOT NULL), \
         heads(id) AS ( \
             SELECT (SELECT MIN(id) FROM bridge_jobs \
                     WHERE queue = $1 AND state = 'pending' AND conversation = c.conversation) \
             FROM conversations c WHERE c.conversation IS NOT NULL) \
         SELECT j.id FROM heads JOIN bridge_jobs j ON j.id = heads.id \
         WHERE j.next_attempt_at <= $2 AND (j.lease_until IS NULL OR j.lease_until <= $2) \
         ORDER BY j.id LIMIT $4) \
     RETURNING id, queue, idempotency_key, conversation, payload, attempts, \
     created_at, expires_at, lease_until, last_error";

/// PostgreSQL: rows another replica is claiming right now are skipped, not waited for. A row
/// whose claim committed meanwhile is re-checked against its new version (its lease is then
/// live, so it drops out); the outer `WHERE` repeats the lease check for the same reason.
const CLAIM_POSTGRES: &str = concat!(
    "WITH heads AS (",
    heads_sql!("FOR UPDATE OF j SKIP LOCKED"),
    ") UPDATE bridge_jobs SET lease_until = $3, attempts = bridge_jobs.attempts + 1, updated_at = $2 \
     FROM heads WHERE bridge_jobs.id = heads.id AND bridge_jobs.state = 'pending' \
       AND (bridge_jobs.lease_until IS NULL OR bridge_jobs.lease_until <= $2) \
     RETURNING bridge_jobs.id, bridge_jobs.queue, bridge_jobs.idempotency_key, \
       bridge_jobs.conversation, bridge_jobs.payload, bridge_jobs.attempts, bridge_jobs.created_at, \
       bridge_jobs.expires_at, bridge_jobs.lease_until, bridge_jobs.last_error"
);

/// The head of one conversation, if it is due and not leased: what a worker that just
/// completed that conversation's job claims in the same commit. On PostgreSQL a row another
/// replica is claiming meanwhile is waited for, then re-checked (its lease is live by then).
const CLAIM_NEXT_OF_CONVERSATION: &str = "UPDATE bridge_jobs \
     SET lease_until = $4, attempts = attempts + 1, updated_at = $3 \
     WHERE id = (SELECT MIN(id) FROM bridge_jobs \
                 WHERE queue = $1 AND state = 'pending' AND conversation = $2) \
       AND state = 'pending' AND next_attempt_at <= $3 \
       AND (lease_until IS NULL OR lease_until <= $3) \
     RETURNING id, queue, idempotency_key, conversation, payload, attempts, \
     created_at, expires_at, lease_until, last_error";

/// Only the worker holding the current lease may settle a job.
const COMPLETE: &str = "UPDATE bridge_jobs \
     SET state = 'done', payload = '', lease_until = NULL, finished_at = $3, updated_at = $3 \
     WHERE id = $1 AND state = 'pending' AND lease_until = $2";
const RETRY: &str = "UPDATE bridge_jobs \
     SET lease_until = NULL, next_attempt_at = $3, last_error = $4, updated_at = $5 \
     WHERE id = $1 AND state = 'pending' AND lease_until = $2";
const RENEW: &str = "UPDATE bridge_jobs SET lease_until = $3 \
     WHERE id = $1 AND state = 'pending' AND lease_until = $2";
/// A failed job keeps its payload, so that an admin can retry it ([`Store::retry_failed_job`]);
/// the pruning of failed jobs after the time they are kept bounds what that costs (docs/engine.md,
/// "Bounds"). Migration 0010 dropped the payloads of the jobs that had failed before.
const FAIL: &str = "UPDATE bridge_jobs \
     SET state = 'failed', lease_until = NULL, last_error = $3, finished_at = $4, updated_at = $4 \
     WHERE id = $1 AND state = 'pending' AND lease_until = $2";

/// The raw columns of a claimed job, read inside `on_pool!` (one copy per driver).
struct RawClaimed {
    id: i64,
    queue: String,
    idempotency_key: String,
    conversation: String,
    payload: String,
    attempts: i64,
    created_at: i64,
    expires_at: Option<i64>,
    lease_until: Option<i64>,
    last_error: Option<String>,
}

macro_rules! read_claimed {
    ($row:expr) => {
        RawClaimed {
            id: $row.try_get("id")?,
            queue: $row.try_get("queue")?,
            idempotency_key: $row.try_get("idempotency_key")?,
            conversation: $row.try_get("conversation")?,
            payload: $row.try_get("payload")?,
            attempts: $row.try_get("attempts")?,
            created_at: $row.try_get("created_at")?,
            expires_at: $row.try_get("expires_at")?,
            lease_until: $row.try_get("lease_until")?,
            last_error: $row.try_get("last_error")?,
        }
    };
}

impl RawClaimed {
    fn into_claimed(self) -> Result<ClaimedJob, StoreError> {
        let lease_until_ms = self
            .lease_until
            .ok_or_else(|| StoreError::Corrupt(format!("claimed job {} has no lease", self.id)))?;
        Ok(ClaimedJob {
            id: JobId(self.id),
            queue: QueueName::parse(&self.queue)?,
            idempotency_key: self.idempotency_key,
            conversation: self.conversation,
            payload: self.payload,
            attempt: count(self.attempts),
            created_at_ms: self.created_at,
            expires_at_ms: self.expires_at,
            lease_until_ms,
            last_error: self.last_error,
        })
    }
}

/// Every column of a job, as a literal so that `concat!` can build static SQL.
macro_rules! record_columns {
    () => {
        "id, queue, idempotency_key, conversation, payload, state, attempts, next_attempt_at, \
         lease_until, last_error, created_at, updated_at, expires_at, finished_at"
    };
}

/// The raw columns of a job in any state, read inside `on_pool!` (one copy per driver).
struct RawRecord {
    claimed: RawClaimed,
    state: String,
    next_attempt_at_ms: i64,
    updated_at_ms: i64,
    finished_at_ms: Option<i64>,
}

/// Reads a row of [`record_columns`] into a [`RawRecord`].
macro_rules! read_record {
    ($row:expr) => {
        $crate::store::jobs::RawRecord {
            claimed: read_claimed!($row),
            state: $row.try_get::<String, _>("state")?,
            next_attempt_at_ms: $row.try_get::<i64, _>("next_attempt_at")?,
            updated_at_ms: $row.try_get::<i64, _>("updated_at")?,
            finished_at_ms: $row.try_get::<Option<i64>, _>("finished_at")?,
        }
    };
}

impl RawRecord {
    fn into_record(self) -> Result<JobRecord, StoreError> {
        let raw = self.claimed;
        Ok(JobRecord {
            id: JobId(raw.id),
            queue: QueueName::parse(&raw.queue)?,
            idempotency_key: raw.idempotency_key,
            conversation: raw.conversation,
            payload: raw.payload,
            state: JobState::parse(&self.state)?,
            attempts: count(raw.attempts),
            next_attempt_at_ms: self.next_attempt_at_ms,
            lease_until_ms: raw.lease_until,
            last_error: raw.last_error,
            created_at_ms: raw.created_at,
            updated_at_ms: self.updated_at_ms,
            expires_at_ms: raw.expires_at,
            finished_at_ms: self.finished_at_ms,
        })
    }
}

fn count(stored: i64) -> u32 {
    u32::try_from(stored.max(0)).unwrap_or(u32::MAX)
}

/// Keys must be usable as keys: not empty, bounded, printable.
fn check_key(what: &'static str, key: &str) -> Result<(), StoreError> {
    ids::check(what, key, MAX_KEY_BYTES, false)?;
    Ok(())
}

fn check_job(job: &NewJob) -> Result<(), StoreError> {
    check_key("job idempotency key", &job.idempotency_key)?;
    check_key("job conversation", &job.conversation)
}

/// `reason` cut to [`MAX_ERROR_BYTES`] at a character boundary.
fn bounded_error(reason: &str) -> &str {
    if reason.len() <= MAX_ERROR_BYTES {
        return reason;
    }
    let mut end = MAX_ERROR_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

impl Store {
    /// Queues `jobs` and remembers `batch` (if given) in one transaction: all of it or nothing.
    ///
    /// [`Inserted::Duplicate`] when nothing was stored: the batch key was seen before (then
    /// none of the jobs is queued, even new ones), or, without a key, every job's key was.
    /// Jobs whose key was seen are skipped silently. Returns only after the commit.
    pub async fn enqueue_jobs(
        &self,
        batch: Option<&BatchKey>,
        jobs: &[NewJob],
        now_ms: i64,
    ) -> Result<Inserted, StoreError> {
        Ok(self.enqueue_jobs_counted(batch, jobs, now_ms).await?.0)
    }

    /// [`Store::enqueue_jobs`], also answering how many jobs each queue gained (jobs whose key
    /// was seen are not counted), for the queue-depth metrics.
    pub async fn enqueue_jobs_counted(
        &self,
        batch: Option<&BatchKey>,
        jobs: &[NewJob],
        now_ms: i64,
    ) -> Result<(Inserted, NewJobs), StoreError> {
        if let Some(batch) = batch {
            check_key("batch key", &batch.key)?;
        }
        for job in jobs {
            check_job(job)?;
        }
        let batch = batch.cloned();
        let jobs = jobs.to_vec();
        let stored = write_on!(self, c => {
            let batch_is_new = match &batch {
                Some(batch) => {
                    sqlx::query(INSERT_BATCH_KEY)
                        .bind(batch.network.as_str())
                        .bind(batch.key.as_str())
                        .bind(now_ms)
                        .execute(&mut *c)
                        .await?
                        .rows_affected()
                        == 1
                }
                None => false,
            };
            let mut new_jobs = NewJobs::default();
            // A batch seen before: nothing was written, none of its jobs is queued again.
            if batch.is_some() && !batch_is_new {
                return Ok((false, new_jobs));
            }
            for job in &jobs {
                let inserted = insert_job!(c, job, now_ms);
                new_jobs.add(job.queue, inserted);
            }
            Ok((batch_is_new || new_jobs.total() > 0, new_jobs))
        })?;
        let (stored, new_jobs) = stored;
        Ok((if stored { Inserted::New } else { Inserted::Duplicate }, new_jobs))
    }

    /// Queues one job unless its key was seen; returns only after the commit.
    pub async fn enqueue_job(&self, job: &NewJob, now_ms: i64) -> Result<Inserted, StoreError> {
        check_job(job)?;
        let job = job.clone();
        let inserted = write_on!(self, one_statement, c => Ok(insert_job!(c, job, now_ms)))?;
        Ok(if inserted == 1 { Inserted::New } else { Inserted::Duplicate })
    }

    /// Claims up to `limit` heads of `queue` that are due at `now_ms`, leasing each until
    /// `now_ms + lease_ms`. At most one job per conversation is returned, oldest first.
    pub async fn claim_jobs(
        &self,
        queue: QueueName,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // A lease of at least 1 ms keeps every new lease later than the one it replaces.
        let lease_until = now_ms.saturating_add(lease_ms.max(1));
        let claim = match self.pool() {
            super::Pool::Sqlite(_) => CLAIM_SQLITE,
            super::Pool::Postgres(_) => CLAIM_POSTGRES,
        };
        let raw = write_on!(self, one_statement, c => {
            let rows = sqlx::query(claim)
                .bind(queue.as_str())
                .bind(now_ms)
                .bind(lease_until)
                .bind(i64::from(limit))
                .fetch_all(&mut *c)
                .await?;
            Ok(rows.iter().map(|row| Ok(read_claimed!(row))).collect::<Result<Vec<_>, sqlx::Error>>()?)
        })?;
        let mut claimed = raw.into_iter().map(RawClaimed::into_claimed).collect::<Result<Vec<_>, _>>()?;
        // RETURNING promises no order.
        claimed.sort_by_key(|job| job.id);
        Ok(claimed)
    }

    /// Marks the job done. `false`: the lease was lost (the job was claimed again after it ran
    /// out) and nothing changed.
    pub async fn complete_job(&self, lease: Lease, now_ms: i64) -> Result<bool, StoreError> {
        Ok(self.complete(lease, None, None, now_ms).await?.settled)
    }

    /// Marks the job done and records the message it bridged ([`Store::record_message`]) in
    /// the same commit: one commit per bridged message instead of two. The mapping is recorded
    /// even if the lease was lost (`false`): the message was delivered either way.
    pub async fn complete_job_recording(
        &self,
        lease: Lease,
        mapping: &NewMapping,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.complete(lease, Some(mapping.clone()), None, now_ms).await?.settled)
    }

    /// Marks `job` done, records `mapping` (if any) and, given `next_lease_ms`, claims the
    /// next head of the job's conversation, leased until `now_ms + next_lease_ms`, all in one
    /// commit: a worker that keeps a busy conversation saves the claim's round trip and its
    /// search over every conversation. Nothing is claimed if the lease was lost or the next
    /// job is not due.
    pub async fn complete_job_and_claim_next(
        &self,
        job: &ClaimedJob,
        mapping: Option<&NewMapping>,
        now_ms: i64,
        next_lease_ms: Option<i64>,
    ) -> Result<Completed, StoreError> {
        let next = next_lease_ms.map(|lease_ms| NextOf {
            queue: job.queue,
            conversation: job.conversation.clone(),
            lease_until_ms: now_ms.saturating_add(lease_ms.max(1)),
        });
        self.complete(job.lease(), mapping.cloned(), next, now_ms).await
    }

    async fn complete(
        &self,
        lease: Lease,
        mapping: Option<NewMapping>,
        next: Option<NextOf>,
        now_ms: i64,
    ) -> Result<Completed, StoreError> {
        // Independent: a mapping recorded without the completion is still true (the message
        // was delivered), and the job's rerun records it again as a no-op. A failed claim
        // after the completion fails the call, though the completion may stay (SQLite): the
        // caller then takes the job for unsettled, and its lease for lost, which is harmless.
        let (changed, raw) = write_on!(self, independent_statements, c => {
            if let Some(mapping) = &mapping {
                insert_mapping!(c, mapping, now_ms);
            }
            let changed = sqlx::query(COMPLETE)
                .bind(lease.id.0)
                .bind(lease.until_ms)
                .bind(now_ms)
                .execute(&mut *c)
                .await?
                .rows_affected();
            let Some(next) = next.filter(|_| changed == 1) else { return Ok((changed, None)) };
            let row = sqlx::query(CLAIM_NEXT_OF_CONVERSATION)
                .bind(next.queue.as_str())
                .bind(next.conversation.as_str())
                .bind(now_ms)
                .bind(next.lease_until_ms)
                .fetch_optional(&mut *c)
                .await?;
            Ok((changed, row.map(|row| Ok::<_, sqlx::Error>(read_claimed!(row))).transpose()?))
        })?;
        Ok(Completed { settled: changed == 1, next: raw.map(RawClaimed::into_claimed).transpose()? })
    }

    /// Extends the lease of a job that is still running to `until_ms` (raised to just after
    /// the current lease if earlier, so a lease never ends sooner than the one it replaces);
    /// the new lease. `None`: the lease was lost (another worker claimed the job after it ran
    /// out) and nothing changed.
    pub async fn renew_lease(&self, lease: Lease, until_ms: i64) -> Result<Option<Lease>, StoreError> {
        let until_ms = until_ms.max(lease.until_ms.saturating_add(1));
        let changed = write_on!(self, one_statement, c => Ok(sqlx::query(RENEW)
            .bind(lease.id.0)
            .bind(lease.until_ms)
            .bind(until_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        Ok((changed == 1).then_some(Lease { id: lease.id, until_ms }))
    }

    /// Releases the job to run again at `next_attempt_at_ms`, recording why it did not finish.
    /// `false`: the lease was lost and nothing changed.
    pub async fn retry_job(
        &self,
        lease: Lease,
        next_attempt_at_ms: i64,
        reason: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let reason = bounded_error(reason).to_owned();
        let changed = write_on!(self, one_statement, c => Ok(sqlx::query(RETRY)
            .bind(lease.id.0)
            .bind(lease.until_ms)
            .bind(next_attempt_at_ms)
            .bind(reason.as_str())
            .bind(now_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        Ok(changed == 1)
    }

    /// Gives the job up with `reason`; its conversation moves on to the next job.
    /// `false`: the lease was lost and nothing changed.
    pub async fn fail_job(&self, lease: Lease, reason: &str, now_ms: i64) -> Result<bool, StoreError> {
        let reason = bounded_error(reason).to_owned();
        let changed = write_on!(self, one_statement, c => Ok(sqlx::query(FAIL)
            .bind(lease.id.0)
            .bind(lease.until_ms)
            .bind(reason.as_str())
            .bind(now_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        Ok(changed == 1)
    }

    /// Deletes done jobs that finished before `finished_before_ms`; returns how many. Pending
    /// and failed jobs stay ([`Store::prune_failed_jobs`] prunes the failed ones).
    pub async fn prune_done_jobs(&self, finished_before_ms: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM bridge_jobs WHERE id IN ( \
             SELECT id FROM bridge_jobs WHERE state = 'done' AND finished_at < $1 LIMIT $2)";
        self.delete_in_batches(SQL, finished_before_ms).await
    }

    /// Forgets batch keys received before `received_before_ms`; returns how many. Only safe
    /// once the network no longer redelivers them (after the message TTL).
    pub async fn prune_inbound_batches(&self, received_before_ms: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM inbound_batches WHERE (network, batch_key) IN ( \
             SELECT network, batch_key FROM inbound_batches WHERE received_at < $1 LIMIT $2)";
        self.delete_in_batches(SQL, received_before_ms).await
    }

    async fn delete_in_batches(&self, sql: &'static str, before_ms: i64) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let deleted = write_on!(self, one_statement, c => Ok(sqlx::query(sql)
                .bind(before_ms)
                .bind(PRUNE_BATCH)
                .execute(&mut *c)
                .await?
                .rows_affected()))?;
            total += deleted;
            if deleted < PRUNE_BATCH.unsigned_abs() {
                return Ok(total);
            }
        }
    }

    /// When the oldest pending job of `queue` was queued, if one is pending: the first entry of
    /// the pending index in id order, which is arrival order.
    pub async fn oldest_pending_job_at(&self, queue: QueueName) -> Result<Option<i64>, StoreError> {
        const SQL: &str = "SELECT created_at FROM bridge_jobs WHERE queue = $1 AND state = 'pending' \
             ORDER BY id LIMIT 1";
        Ok(on_pool!(self.pool(), p => {
            sqlx::query_scalar::<_, i64>(SQL).bind(queue.as_str()).fetch_optional(p).await?
        }))
    }

    /// Jobs per queue and state (for the queue-depth metrics); absent pairs have none.
    pub async fn count_jobs(&self) -> Result<Vec<JobCount>, StoreError> {
        const SQL: &str = "SELECT queue, state, COUNT(*) AS n FROM bridge_jobs GROUP BY queue, state";
        let rows = on_pool!(self.pool(), p => {
            let rows = sqlx::query(SQL).fetch_all(p).await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.try_get::<String, _>("queue")?,
                        row.try_get::<String, _>("state")?,
                        row.try_get::<i64, _>("n")?,
                    ))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter()
            .map(|(queue, state, n)| {
                Ok(JobCount {
                    queue: QueueName::parse(&queue)?,
                    state: JobState::parse(&state)?,
                    count: n.unsigned_abs(),
                })
            })
            .collect()
    }

    /// The job with this key in `queue`, in whatever state.
    pub async fn get_job(
        &self,
        queue: QueueName,
        idempotency_key: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            record_columns!(),
            " FROM bridge_jobs WHERE queue = $1 AND idempotency_key = $2"
        );
        let row = on_pool!(self.pool(), p => {
            match sqlx::query(SQL).bind(queue.as_str()).bind(idempotency_key).fetch_optional(p).await? {
                None => None,
                Some(row) => Some(read_record!(row)),
            }
        });
        row.map(RawRecord::into_record).transpose()
    }
}

mod admin;
pub use admin::{JobChange, JobFilter, MAX_JOBS_PAGE, StateFilter};
mod bounds;
pub use bounds::CappedInsert;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_round_trip() {
        for queue in QueueName::ALL {
            assert_eq!(QueueName::parse(queue.as_str()).ok(), Some(queue));
        }
        for state in [JobState::Pending, JobState::Done, JobState::Failed] {
            assert_eq!(JobState::parse(state.as_str()).ok(), Some(state));
        }
        assert!(QueueName::parse("elsewhere").is_err());
    }

    #[test]
    fn long_errors_are_cut_at_a_character_boundary() {
        let reason = "é".repeat(MAX_ERROR_BYTES);
        let cut = bounded_error(&reason);
        assert!(cut.len() <= MAX_ERROR_BYTES);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(bounded_error("short"), "short");
    }
}
