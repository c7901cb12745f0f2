//! What an admin does to the job queues: list them, look at one job, retry a failed job, drop a
//! job (docs/engine.md, "Admin actions on jobs"; the admin API and console call these).
//!
//! Failed jobs used to be invisible: they left only a log line and a gauge. An operator needs to
//! see why a message failed and, once the cause is fixed (a bot unblocked, a homeserver back),
//! send it again without asking the sender to. So a failed job keeps its payload until it is
//! pruned, and [`Store::retry_failed_job`] puts it back in its queue.
//!
//! A retried job keeps its id. Claims run the oldest pending job of a conversation first, so
//! the retried job runs before every job of its conversation that is still pending, and the
//! jobs that came after it and were delivered meanwhile stay delivered: a retry is a late
//! delivery, never a reordering of what is still waiting.

use sqlx::Row;

use super::{JobRecord, JobState, QueueName, RawClaimed, RawRecord};
use crate::store::{Store, StoreError, on_pool, write_on};

/// The most jobs one page lists.
pub const MAX_JOBS_PAGE: u32 = 200;

/// Which jobs a listing shows, by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// Every job not done or failed: waiting, retrying or running.
    Pending,
    /// Pending jobs that ran at least once (and will run again).
    Retrying,
    Failed,
    Done,
}

impl StateFilter {
    pub const ALL: [StateFilter; 4] =
        [StateFilter::Pending, StateFilter::Retrying, StateFilter::Failed, StateFilter::Done];

    pub fn as_str(self) -> &'static str {
        match self {
            StateFilter::Pending => "pending",
            StateFilter::Retrying => "retrying",
            StateFilter::Failed => "failed",
            StateFilter::Done => "done",
        }
    }

    /// The stored state, and whether the job must have run before.
    fn columns(self) -> (&'static str, bool) {
        match self {
            StateFilter::Pending => ("pending", false),
            StateFilter::Retrying => ("pending", true),
            StateFilter::Failed => ("failed", false),
            StateFilter::Done => ("done", false),
        }
    }
}

impl std::str::FromStr for StateFilter {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        StateFilter::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| format!("unknown job state {text:?}; expected pending, retrying, failed or done"))
    }
}

/// A page of jobs: those with an id above `after`, in id order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobFilter {
    pub queue: Option<QueueName>,
    pub state: Option<StateFilter>,
    pub after: i64,
    /// Cut to 1..=[`MAX_JOBS_PAGE`].
    pub limit: u32,
}

/// What an admin's change of a job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobChange {
    /// Changed; the job as it is now (for a drop: as it was).
    Changed(JobRecord),
    NotFound,
    /// Not changed, because of the job's state; the reason is for the admin.
    Refused(String),
}

/// The list leaves payloads out: they can be megabytes each.
const LIST: &str = "SELECT id, queue, idempotency_key, conversation, CAST('' AS TEXT) AS payload, state, \
     attempts, next_attempt_at, lease_until, last_error, created_at, updated_at, expires_at, finished_at \
     FROM bridge_jobs WHERE id > $1 AND ($2 = '' OR queue = $2) AND ($3 = '' OR state = $3) \
       AND ($4 = 0 OR attempts > 0) \
     ORDER BY id LIMIT $5";

const BY_ID: &str = concat!("SELECT ", record_columns!(), " FROM bridge_jobs WHERE id = $1");

/// The conditions are those [`Store::retry_failed_job`] checked, repeated so that a job that
/// changed in between is not touched.
/// It answers the job as the retry left it: read afterwards, a worker may have claimed it already.
const RETRY_FAILED: &str = concat!(
    "UPDATE bridge_jobs SET state = 'pending', attempts = 0, next_attempt_at = $2, \
     lease_until = NULL, finished_at = NULL, updated_at = $2 \
     WHERE id = $1 AND state = 'failed' AND payload <> '' AND (expires_at IS NULL OR expires_at > $2) \
     RETURNING ",
    record_columns!()
);

const DROP: &str = "DELETE FROM bridge_jobs WHERE id = $1 \
     AND (state = 'failed' OR (state = 'pending' AND (lease_until IS NULL OR lease_until <= $2)))";

impl Store {
    /// A page of jobs, payloads left out (see [`JobFilter`]).
    pub async fn list_jobs(&self, filter: JobFilter) -> Result<Vec<JobRecord>, StoreError> {
        let (state, ran) = filter.state.map_or(("", false), StateFilter::columns);
        let queue = filter.queue.map_or("", QueueName::as_str);
        let limit = i64::from(filter.limit.clamp(1, MAX_JOBS_PAGE));
        let raw = on_pool!(self.pool(), p => {
            let rows = sqlx::query(LIST)
                .bind(filter.after)
                .bind(queue)
                .bind(state)
                .bind(i64::from(ran))
                .bind(limit)
                .fetch_all(p)
                .await?;
            rows.iter().map(|row| Ok(read_record!(row))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        raw.into_iter().map(RawRecord::into_record).collect()
    }

    /// One job by its id, payload included.
    pub async fn job(&self, id: i64) -> Result<Option<JobRecord>, StoreError> {
        let raw = on_pool!(self.pool(), p => {
            match sqlx::query(BY_ID).bind(id).fetch_optional(p).await? {
                None => None,
                Some(row) => Some(read_record!(row)),
            }
        });
        raw.map(RawRecord::into_record).transpose()
    }

    /// Puts a failed job back in its queue, due at once, with its attempts reset (the order
    /// this gives is in the module documentation). Refused for a job that is not failed, whose
    /// payload was dropped (it failed before migration 0010 kept them) or whose message's TTL
    /// has passed (it would only fail again).
    pub async fn retry_failed_job(&self, id: i64, now_ms: i64) -> Result<JobChange, StoreError> {
        let Some(job) = self.job(id).await? else { return Ok(JobChange::NotFound) };
        if job.state != JobState::Failed {
            return Ok(JobChange::Refused(format!("job {id} is {}, not failed", job.state.as_str())));
        }
        if job.payload.is_empty() {
            return Ok(JobChange::Refused(format!(
                "job {id} failed before failed jobs kept their payload; there is nothing to send again"
            )));
        }
        if job.expires_at_ms.is_some_and(|expires| expires <= now_ms) {
            return Ok(JobChange::Refused(format!(
                "the message of job {id} has expired; a retry would only fail again"
            )));
        }
        let raw = write_on!(self, one_statement, c => {
            let row = sqlx::query(RETRY_FAILED).bind(id).bind(now_ms).fetch_optional(&mut *c).await?;
            Ok(row.map(|row| Ok::<_, sqlx::Error>(read_record!(row))).transpose()?)
        })?;
        match raw {
            Some(raw) => Ok(JobChange::Changed(raw.into_record()?)),
            None => Ok(JobChange::Refused(format!("job {id} changed meanwhile; look at it again"))),
        }
    }

    /// Deletes a failed job, or a pending one that is not running now. A done job stays until it
    /// is pruned: its key still recognises a replay of its message. A dropped job's key is
    /// forgotten, so a replay of that message is queued again.
    pub async fn drop_job(&self, id: i64, now_ms: i64) -> Result<JobChange, StoreError> {
        let Some(job) = self.job(id).await? else { return Ok(JobChange::NotFound) };
        match job.state {
            JobState::Done => {
                return Ok(JobChange::Refused(format!(
                    "job {id} is done; it is kept until pruned so that a replay of its message is recognised"
                )));
            }
            JobState::Pending if job.lease_until_ms.is_some_and(|until| until > now_ms) => {
                return Ok(JobChange::Refused(format!("job {id} is running; drop it once it is settled")));
            }
            JobState::Pending | JobState::Failed => {}
        }
        let changed = write_on!(self, one_statement, c => Ok(sqlx::query(DROP)
            .bind(id)
            .bind(now_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        Ok(if changed == 0 {
            JobChange::Refused(format!("job {id} changed meanwhile; look at it again"))
        } else {
            JobChange::Changed(job)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_filters_parse_their_own_names_only() {
        for state in StateFilter::ALL {
            assert_eq!(state.as_str().parse::<StateFilter>(), Ok(state));
        }
        assert!("running".parse::<StateFilter>().is_err());
        assert!("".parse::<StateFilter>().is_err());
    }
}
