//! The worker: claims the heads of one queue and runs them through a [`JobHandler`].
//!
//! The loop (`run`):
//! 1. claim up to as many heads as there are free slots (the semaphore bounds how many
//!    conversations run at once). The store hands out at most one job per conversation and
//!    only the oldest pending one, so a conversation runs one job at a time, in order, even
//!    across replicas;
//! 2. run each claimed job in its own task: check the message TTL, call the handler (in a task
//!    of its own, so a panic or a hang becomes a retry instead of a lost worker), then settle
//!    the outcome in the store under the job's lease;
//! 3. a job that ends done claims the next job of its conversation in the same commit, and its
//!    task runs that one too, while slots are free (so no other conversation waits for one);
//! 4. sleep until a job task ends (its conversation may have a next head), a producer wakes the
//!    queue, the poll interval passes (another replica may have queued work, or a retry came
//!    due) or `stop` is cancelled.
//!
//! Stopping claims nothing new and waits for the jobs in flight, each bounded by the handler
//! timeout. A job is never settled twice: an outcome is written only while the job still holds
//! the lease of its claim.
//!
//! The lease is short and renewed while the handler runs (every third of it): a process that
//! dies (`kill -9`, a crash, a lost machine) holds its jobs only until their lease runs out, so
//! their conversations resume within a lease after a restart instead of waiting out a lease
//! sized for the slowest send. A renewal that finds the lease lost (the job was taken over
//! after the renewals stalled) stops the handler: the other run owns the job.
//!
//! Errors of the store are logged and retried at the next poll: a job whose outcome could not
//! be written keeps its lease until it runs out and is then run again (handlers are
//! idempotent: every send carries a key derived from the job).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dm3_bridge_connector::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::config::DEFAULT_ENGINE_CONCURRENCY;
use crate::store::{ClaimedJob, JobState, NewMapping, QueueName, Store};
use crate::telemetry::metrics as names;

use super::depth::QueueDepth;
use super::queue::Running;
use super::{Backoff, Queue};

/// How a job run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Done: the job bridged a message, which became `0` on the other side. The mapping is
    /// recorded in the commit that completes the job (one commit per message, not two).
    Bridged(NewMapping),
    /// Try again later: after the backoff, and not before `after` if the network said so.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Give up; the conversation moves on and the sender is told ([`JobHandler::on_failed`]).
    Failed {
        reason: String,
        /// Why, in a few words an operator can count and alert on (`dm3_engine_failures_total`).
        cause: FailureCause,
    },
}

/// What made a job fail for good, as the `cause` label of `dm3_engine_failures_total`: a small
/// fixed set, so the metric stays a handful of series however varied the reasons are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// The network refused (a blocked bot, a room the ghost cannot post in, unsupported content).
    Network,
    /// The DM3 side: the message or envelope is invalid, or the recipient cannot be reached.
    Dm3,
    /// The virtual identity is disabled, unknown or unusable.
    Identity,
    /// The portal is suspended: its conversation is not a direct chat of its two people.
    PortalSuspended,
    /// The network user has not accepted a DM3 user's first contact, and as many messages as
    /// are held for them wait already (docs/engine.md, "First contact").
    AwaitingConsent,
    /// The message's TTL passed before it could be delivered.
    Expired,
    /// Anything else (an unreadable job, a malformed name).
    Other,
}

impl FailureCause {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCause::Network => "network",
            FailureCause::Dm3 => "dm3",
            FailureCause::Identity => "identity",
            FailureCause::AwaitingConsent => "consent",
            FailureCause::PortalSuspended => "portal_suspended",
            FailureCause::Expired => "expired",
            FailureCause::Other => "other",
        }
    }
}

/// What a job does. One handler per queue; it must be idempotent, because a job whose worker
/// died or overran its lease runs again.
pub trait JobHandler: Send + Sync + 'static {
    /// Runs one job. Should finish well within the lease ([`WorkerOptions::handler_timeout`]
    /// cuts it off otherwise).
    fn handle(&self, job: ClaimedJob) -> BoxFuture<'_, Outcome>;

    /// Called when a job is about to end `failed`, whatever the cause (its own
    /// [`Outcome::Failed`], or the message TTL passing): the place to queue the failure report
    /// to the sender. The job is marked failed only after this returned `Ok`, so a report is
    /// never lost; it may run twice for one job after a crash (queue it under a key derived
    /// from the job). `Err` is for transient trouble only: the job is retried later. Default:
    /// nothing to report.
    fn on_failed<'a>(&'a self, job: &'a ClaimedJob, reason: &'a str) -> BoxFuture<'a, Result<(), String>> {
        let _ = (job, reason);
        Box::pin(async { Ok(()) })
    }
}

/// How a worker runs; the defaults suit a small node.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Conversations run at once.
    pub concurrency: usize,
    /// Most heads claimed by one query.
    pub claim_batch: u32,
    /// How long a claim holds a job before another worker may take it over, unless the
    /// worker renews it (every third of it, while the handler runs): how long the jobs of a
    /// process that died stay blocked.
    pub lease: Duration,
    /// How long a handler may run.
    pub handler_timeout: Duration,
    /// How often the worker looks for work without being woken.
    pub poll_interval: Duration,
    /// How often the queue-depth gauges are re-synced with a count over the whole table (they
    /// move at each transition meanwhile, [`super::depth`]).
    pub depth_interval: Duration,
    pub backoff: Backoff,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_ENGINE_CONCURRENCY as usize,
            claim_batch: 32,
            lease: Duration::from_secs(30),
            handler_timeout: Duration::from_secs(240),
            poll_interval: Duration::from_secs(1),
            depth_interval: Duration::from_secs(15),
            backoff: Backoff::default(),
        }
    }
}

impl WorkerOptions {
    fn renew_every(&self) -> Duration {
        (self.lease / 3).max(Duration::from_millis(1))
    }
}

/// What a job task needs, shared by all of them.
struct Context {
    store: Store,
    queue: QueueName,
    /// This process's figures of the queue depth, moved as outcomes are settled.
    depth: Arc<QueueDepth>,
    handler: Arc<dyn JobHandler>,
    options: WorkerOptions,
    /// The worker's slots: a task keeps its conversation only while some are free.
    slots: Arc<Semaphore>,
    stop: CancellationToken,
}

/// Works `queue` until `stop` is cancelled, then waits for the jobs in flight.
pub async fn run(
    queue: Queue,
    name: QueueName,
    handler: Arc<dyn JobHandler>,
    options: WorkerOptions,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let lease_ms = millis(options.lease);
    let claim_batch = options.claim_batch.max(1);
    let mut poll = tokio::time::interval(options.poll_interval.max(Duration::from_millis(1)));
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let context = Arc::new(Context {
        store: queue.store().clone(),
        queue: name,
        depth: queue.depth().clone(),
        handler,
        options: options.clone(),
        slots: slots.clone(),
        stop: stop.clone(),
    });
    let mut running = JoinSet::new();
    let mut depth_refreshed: Option<Instant> = None;

    while !stop.is_cancelled() {
        if depth_refreshed.is_none_or(|at| at.elapsed() >= options.depth_interval) {
            refresh_depth(&context, name).await;
            depth_refreshed = Some(Instant::now());
        }
        let free = u32::try_from(slots.available_permits()).unwrap_or(u32::MAX);
        let mut maybe_more = false;
        if free > 0 {
            let limit = free.min(claim_batch);
            match context.store.claim_jobs(name, now_ms(), lease_ms, limit).await {
                Ok(jobs) => {
                    maybe_more = u32::try_from(jobs.len()).is_ok_and(|n| n == limit);
                    for job in jobs {
                        // Never waits: this loop is the only one taking slots, and it claimed
                        // no more jobs than were free. Fails only if the semaphore is closed,
                        // which it never is; the job then simply runs without a slot.
                        let slot = slots.clone().acquire_owned().await.ok();
                        let conversation = queue.running(name, &job.conversation);
                        running.spawn(run_conversation(context.clone(), job, (slot, conversation)));
                    }
                }
                Err(error) => tracing::warn!(queue = %name, %error, "claiming jobs failed; will retry"),
            }
        }
        if maybe_more && slots.available_permits() > 0 {
            continue;
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some(ended) = running.join_next(), if !running.is_empty() => log_task_end(name, ended),
            () = queue.woken(name) => {}
            _ = poll.tick() => {}
        }
    }
    while let Some(ended) = running.join_next().await {
        log_task_end(name, ended);
    }
}

fn log_task_end(queue: QueueName, ended: Result<(), tokio::task::JoinError>) {
    if let Err(error) = ended {
        tracing::error!(%queue, %error, "a job task ended abnormally");
    }
}

/// Runs a claimed job and then each next job of its conversation claimed with the previous
/// one's completion; holds its slot and marks its conversation running until then.
async fn run_conversation(
    context: Arc<Context>,
    job: ClaimedJob,
    _held: (Option<OwnedSemaphorePermit>, Running),
) {
    let mut next = Some(job);
    while let Some(job) = next {
        next = run_job(&context, job).await;
    }
}

/// Runs one claimed job and settles its outcome. Returns the conversation's next job if it
/// was claimed with the completion: only while no other conversation could be waiting for a
/// slot (some are free; otherwise the worker's claim picks the oldest heads of all) and the
/// worker is not stopping.
async fn run_job(context: &Context, job: ClaimedJob) -> Option<ClaimedJob> {
    let started = Instant::now();
    let queue = context.queue;
    if job.is_expired(now_ms()) {
        let reason = format!(
            "the message expired before it could be delivered (after {} attempts{})",
            job.attempt.saturating_sub(1),
            job.last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default()
        );
        give_up(context, &job, &reason, FailureCause::Expired).await;
        return None;
    }
    let mut job = job;
    let outcome = call_handler(context, &mut job).await;
    metrics::histogram!(names::ENGINE_JOB_DURATION, "queue" => queue.as_str())
        .record(started.elapsed().as_secs_f64());
    match outcome {
        Outcome::Done => return complete(context, &job, None).await,
        Outcome::Bridged(mapping) => return complete(context, &job, Some(&mapping)).await,
        Outcome::Retry { after, reason } => {
            let delay = context.options.backoff.random_delay(job.attempt, after);
            let now = now_ms();
            let next_attempt_at = now.saturating_add(millis(delay));
            if job.expires_at_ms.is_some_and(|expires| next_attempt_at >= expires) {
                let reason = format!(
                    "the message expired while delivery was being retried (after {} attempts); \
                     last error: {reason}",
                    job.attempt
                );
                give_up(context, &job, &reason, FailureCause::Expired).await;
            } else {
                tracing::debug!(%queue, job = %job.id, attempt = job.attempt, ?delay, %reason, "job will be retried");
                let settled = context.store.retry_job(job.lease(), next_attempt_at, &reason, now).await;
                record_settled(context, &job, "retry", settled);
            }
        }
        Outcome::Failed { reason, cause } => give_up(context, &job, &reason, cause).await,
    }
    None
}

/// Settles a job done (with the mapping of what it bridged) and, when [`run_job`] may go on
/// with the conversation, claims its next job in the same commit.
async fn complete(context: &Context, job: &ClaimedJob, mapping: Option<&NewMapping>) -> Option<ClaimedJob> {
    let go_on = context.slots.available_permits() > 0 && !context.stop.is_cancelled();
    let next_lease_ms = go_on.then(|| millis(context.options.lease));
    match context.store.complete_job_and_claim_next(job, mapping, now_ms(), next_lease_ms).await {
        Ok(completed) => {
            record_settled(context, job, "done", Ok(completed.settled));
            completed.next
        }
        Err(error) => {
            record_settled(context, job, "done", Err(error));
            None
        }
    }
}

/// The handler's outcome; a panic or a run past the timeout is a retry. Renews the job's
/// lease while the handler runs (`job` then holds the latest one); a lost lease stops it.
async fn call_handler(context: &Context, job: &mut ClaimedJob) -> Outcome {
    let handler = context.handler.clone();
    let run = job.clone();
    let mut task = tokio::spawn(async move { handler.handle(run).await });
    let timeout = context.options.handler_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let every = context.options.renew_every();
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            joined = &mut task => {
                return match joined {
                    Ok(outcome) => outcome,
                    Err(error) => {
                        tracing::error!(queue = %context.queue, %error, "a job handler panicked");
                        Outcome::Retry { after: None, reason: "the handler panicked".to_owned() }
                    }
                };
            }
            () = tokio::time::sleep_until(deadline) => {
                task.abort();
                return Outcome::Retry {
                    after: None,
                    reason: format!("the handler did not finish within {timeout:?}"),
                };
            }
            _ = renew.tick() => {
                let until = now_ms().saturating_add(millis(context.options.lease));
                match context.store.renew_lease(job.lease(), until).await {
                    Ok(Some(lease)) => job.lease_until_ms = lease.until_ms,
                    Ok(None) => {
                        task.abort();
                        return Outcome::Retry {
                            after: None,
                            reason: "the job's lease was lost while it ran".to_owned(),
                        };
                    }
                    // The lease still runs for two thirds; the next tick tries again.
                    Err(error) => {
                        tracing::warn!(queue = %context.queue, job = %job.id, %error, "renewing the job's lease failed");
                    }
                }
            }
        }
    }
}

/// Reports the failure through the handler, then marks the job failed; if the report could not
/// be queued, retries the job instead so that the report is not lost.
async fn give_up(context: &Context, job: &ClaimedJob, reason: &str, cause: FailureCause) {
    tracing::warn!(queue = %context.queue, job = %job.id, key = %job.idempotency_key, cause = cause.as_str(), %reason, "job failed");
    let outcome = if cause == FailureCause::Expired { "expired" } else { "failed" };
    match context.handler.on_failed(job, reason).await {
        Ok(()) => {
            let settled = context.store.fail_job(job.lease(), reason, now_ms()).await;
            if matches!(settled, Ok(true)) {
                metrics::counter!(names::ENGINE_FAILURES, "queue" => job.queue.as_str(), "cause" => cause.as_str())
                    .increment(1);
            }
            record_settled(context, job, outcome, settled);
        }
        Err(error) => {
            let delay = context.options.backoff.random_delay(job.attempt, None);
            let now = now_ms();
            let why = format!("reporting the failure failed ({error}); the job failed because: {reason}");
            let settled =
                context.store.retry_job(job.lease(), now.saturating_add(millis(delay)), &why, now).await;
            record_settled(context, job, "retry", settled);
        }
    }
}

/// Counts the outcome once it is in the store; a lost lease or a store error is logged.
fn record_settled(
    context: &Context,
    job: &ClaimedJob,
    outcome: &'static str,
    settled: Result<bool, crate::store::StoreError>,
) {
    match settled {
        Ok(true) => {
            match outcome {
                "done" => context.depth.settled(job.queue, JobState::Done),
                "failed" | "expired" => context.depth.settled(job.queue, JobState::Failed),
                _ => {}
            }
            metrics::counter!(names::ENGINE_JOBS, "queue" => job.queue.as_str(), "outcome" => outcome)
                .increment(1);
        }
        Ok(false) => {
            tracing::warn!(queue = %job.queue, job = %job.id, outcome, "the job's lease ran out; another run owns it now");
            metrics::counter!(names::ENGINE_JOBS, "queue" => job.queue.as_str(), "outcome" => "lease_lost")
                .increment(1);
        }
        Err(error) => {
            tracing::warn!(queue = %job.queue, job = %job.id, outcome, %error,
                "recording the job's outcome failed; it runs again when its lease runs out");
        }
    }
}

/// Re-syncs the depth figures of `queue` with a count of the table, and samples the age of
/// its oldest pending job (0 when none is pending).
async fn refresh_depth(context: &Context, queue: QueueName) {
    match context.store.count_jobs().await {
        Ok(counts) => context.depth.resync(queue, &counts),
        Err(error) => tracing::warn!(%queue, %error, "counting jobs failed"),
    }
    match context.store.oldest_pending_job_at(queue).await {
        Ok(oldest) => {
            let age_ms = oldest.map_or(0, |created| now_ms().saturating_sub(created).max(0));
            metrics::gauge!(names::ENGINE_OLDEST_PENDING, "queue" => queue.as_str())
                .set(age_ms as f64 / 1000.0);
        }
        Err(error) => tracing::warn!(%queue, %error, "finding the oldest pending job failed"),
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
