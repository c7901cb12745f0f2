//! The job queues in the admin API: list, show, retry a failed job, drop a job.
//!
//! Failed jobs were invisible to an operator (issue #20): a log line and a gauge. These routes
//! show each job with its state and reason and act on it through the store's admin operations
//! ([`crate::store::jobs`], docs/engine.md "Admin actions on jobs"); the console and the CLI use
//! the same views and operations. A listing leaves payloads out (they can be megabytes); one job
//! shows its payload's kind and size, never its content (an inbox payload holds an envelope).

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AdminState;
use super::routes::store_error;
use crate::clock::now_ms;
use crate::http::admin_error::AdminError;
use crate::store::{JobChange, JobFilter, JobRecord, JobState, MAX_JOBS_PAGE, QueueName, StateFilter, Store};

/// Jobs listed when the query does not say.
pub const DEFAULT_JOBS_PAGE: u32 = 50;

/// One job, as the API answers and the CLI prints it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub id: i64,
    pub queue: &'static str,
    /// `pending` (waiting for its first run), `running` (leased now), `retrying` (ran, will run
    /// again), `done` or `failed`.
    pub status: &'static str,
    pub conversation: String,
    pub idempotency_key: String,
    pub attempts: u32,
    /// Why the last run did not finish, or why the job failed.
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub next_attempt_at: i64,
    pub expires_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The payload's kind (`envelope`, `inbound`, `report`, `unlinked`), when shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The payload's size in bytes, when shown (0: dropped, nothing to retry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<usize>,
}

impl JobView {
    /// The job without its payload (a listing).
    pub fn summary(job: &JobRecord, now_ms: i64) -> Self {
        Self {
            id: job.id.get(),
            queue: job.queue.as_str(),
            status: status(job, now_ms),
            conversation: job.conversation.clone(),
            idempotency_key: job.idempotency_key.clone(),
            attempts: job.attempts,
            last_error: job.last_error.clone(),
            created_at: job.created_at_ms,
            updated_at: job.updated_at_ms,
            next_attempt_at: job.next_attempt_at_ms,
            expires_at: job.expires_at_ms,
            finished_at: job.finished_at_ms,
            kind: None,
            payload_bytes: None,
        }
    }

    /// The job with what its payload is (one job).
    pub fn detail(job: &JobRecord, now_ms: i64) -> Self {
        let kind = serde_json::from_str::<serde_json::Value>(&job.payload)
            .ok()
            .and_then(|value| value.get("kind")?.as_str().map(str::to_owned));
        Self { kind, payload_bytes: Some(job.payload.len()), ..Self::summary(job, now_ms) }
    }

    /// Whether an admin may retry it now.
    pub fn retryable(&self) -> bool {
        self.status == "failed"
    }

    /// Whether an admin may drop it now.
    pub fn droppable(&self) -> bool {
        matches!(self.status, "failed" | "pending" | "retrying")
    }
}

fn status(job: &JobRecord, now_ms: i64) -> &'static str {
    match job.state {
        JobState::Done => "done",
        JobState::Failed => "failed",
        JobState::Pending if job.lease_until_ms.is_some_and(|until| until > now_ms) => "running",
        JobState::Pending if job.attempts > 0 => "retrying",
        JobState::Pending => "pending",
    }
}

/// A page of jobs: `next` is the `after` of the following page, absent on the last.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobPageView {
    pub jobs: Vec<JobView>,
    pub next: Option<i64>,
}

impl JobPageView {
    pub fn new(jobs: &[JobRecord], limit: u32, now_ms: i64) -> Self {
        let full = u32::try_from(jobs.len()).is_ok_and(|len| len >= limit);
        Self {
            jobs: jobs.iter().map(|job| JobView::summary(job, now_ms)).collect(),
            next: full.then(|| jobs.last().map(|job| job.id.get())).flatten(),
        }
    }
}

/// Parses `queue=&state=&limit=&after=`; unknown keys and bad values are refused.
pub fn parse_filter(query: Option<&str>) -> Result<JobFilter, AdminError> {
    let mut filter = JobFilter { queue: None, state: None, after: 0, limit: DEFAULT_JOBS_PAGE };
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let number = || AdminError::bad_request(format!("{key}={value:?} is not a whole number"));
        match key.as_ref() {
            "queue" if value.is_empty() => filter.queue = None,
            "queue" => {
                let queue = QueueName::ALL.into_iter().find(|q| q.as_str() == value);
                filter.queue = Some(queue.ok_or_else(|| {
                    AdminError::bad_request(format!("queue={value:?}: expected inbox or outbox"))
                })?);
            }
            "state" if value.is_empty() => filter.state = None,
            "state" => filter.state = Some(value.parse::<StateFilter>().map_err(AdminError::bad_request)?),
            "after" => filter.after = value.parse::<i64>().map_err(|_| number())?,
            "limit" => {
                let limit = value.parse::<u32>().map_err(|_| number())?;
                if !(1..=MAX_JOBS_PAGE).contains(&limit) {
                    return Err(AdminError::bad_request(format!("limit must be 1 to {MAX_JOBS_PAGE}")));
                }
                filter.limit = limit;
            }
            other => {
                return Err(AdminError::bad_request(format!(
                    "unknown query parameter {other:?}; expected queue, state, after, limit"
                )));
            }
        }
    }
    Ok(filter)
}

type Answer = Result<Response, AdminError>;

/// `GET /admin/jobs?queue=inbox&state=failed&after=0&limit=50`: jobs in id order.
pub async fn list(State(state): State<AdminState>, RawQuery(query): RawQuery) -> Answer {
    let filter = parse_filter(query.as_deref())?;
    let jobs = state.store.list_jobs(filter).await.map_err(store_error)?;
    Ok(Json(JobPageView::new(&jobs, filter.limit, now_ms())).into_response())
}

pub async fn show(State(state): State<AdminState>, id: Result<Path<i64>, PathRejection>) -> Answer {
    let id = job_id(id)?;
    match state.store.job(id).await.map_err(store_error)? {
        Some(job) => Ok(Json(JobView::detail(&job, now_ms())).into_response()),
        None => Err(no_job(id)),
    }
}

/// `POST /admin/jobs/{id}/retry`: a failed job back to pending; 409 for any other.
pub async fn retry(State(state): State<AdminState>, id: Result<Path<i64>, PathRejection>) -> Answer {
    let id = job_id(id)?;
    let change = retry_job(&state.store, id).await?;
    Ok(Json(change).into_response())
}

/// `DELETE /admin/jobs/{id}`: drop a failed or waiting job; 409 for a running or done one.
pub async fn drop(State(state): State<AdminState>, id: Result<Path<i64>, PathRejection>) -> Answer {
    let id = job_id(id)?;
    let change = drop_job(&state.store, id).await?;
    Ok(Json(change).into_response())
}

/// Retries job `id`, answering the job as it is now or the refusal; shared with the console.
pub async fn retry_job(store: &Store, id: i64) -> Result<JobView, AdminError> {
    let now = now_ms();
    settle(store.retry_failed_job(id, now).await.map_err(store_error)?, id, now)
}

/// Drops job `id`, answering the job as it was or the refusal; shared with the console.
pub async fn drop_job(store: &Store, id: i64) -> Result<JobView, AdminError> {
    let now = now_ms();
    settle(store.drop_job(id, now).await.map_err(store_error)?, id, now)
}

fn settle(change: JobChange, id: i64, now_ms: i64) -> Result<JobView, AdminError> {
    match change {
        JobChange::Changed(job) => Ok(JobView::detail(&job, now_ms)),
        JobChange::NotFound => Err(no_job(id)),
        JobChange::Refused(reason) => Err(AdminError::new(StatusCode::CONFLICT, "conflict", reason)),
    }
}

fn job_id(id: Result<Path<i64>, PathRejection>) -> Result<i64, AdminError> {
    let Path(id) = id.map_err(|e| AdminError::bad_request(format!("the job id is not a number: {e}")))?;
    Ok(id)
}

fn no_job(id: i64) -> AdminError {
    AdminError::new(StatusCode::NOT_FOUND, "not_found", format!("there is no job {id}"))
}
