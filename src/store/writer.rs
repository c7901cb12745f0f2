//! Group commit: one writer task commits concurrent envelope inserts in one transaction.
//!
//! The load goal is ≥ 2,000 accepted envelopes/s on SQLite on 2 cores with every acknowledged
//! envelope durable. Durable means an fsync per commit, and an fsync costs about a millisecond
//! or more, so one transaction per envelope caps out far below the goal, and SQLite's single
//! write lock makes parallel transactions queue up anyway. So:
//!
//! - each `insert` puts its envelope on a bounded queue with a oneshot for the answer;
//! - the writer takes whatever is queued (up to `max_batch`), inserts it all in one
//!   transaction, commits, and only then answers every caller;
//! - while that commit's fsync runs, new inserts pile up and form the next batch. There is no
//!   timer: at low load a batch is one envelope and adds no latency; under load batches grow
//!   by themselves until one fsync serves hundreds of envelopes.
//!
//! A batch is written with multi-row `INSERT … RETURNING` statements of up to
//! [`ROWS_PER_STATEMENT`] rows, not one statement per envelope: on SQLite each statement is a
//! round trip to the connection's worker thread, on PostgreSQL one over the socket, and both
//! cost more than the row itself. `RETURNING` lists the rows that went in; an envelope whose
//! key is not among them was a duplicate.
//!
//! If a batch fails, each of its envelopes is retried alone, so one bad row (or a transient
//! error) cannot fail its neighbours; each caller gets its own envelope's outcome. A caller is
//! answered `Ok` only after COMMIT returned.
//!
//! The same path runs on PostgreSQL: fewer, larger commits help there too. On SQLite a batch
//! is one write of the node's write connection ([`super::write_connection`]), which may share
//! its transaction with the engine's writes.
//!
//! Shutdown: `Writer::shutdown` (called by [`Store::close`](super::Store::close)) closes the
//! queue (new inserts fail with [`StoreError::ShuttingDown`]), commits everything already
//! queued, and waits for the task.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use sqlx::Row;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::telemetry::metrics as names;

use super::write_connection::{Statements, WriteConnection};
use super::{Inserted, NewEnvelope, Pool, StoreError, StoreOptions};

/// Most rows in one `INSERT` statement: 6 parameters each stays far below both backends'
/// parameter limits, and few distinct statement texts stay in the prepared-statement cache.
const ROWS_PER_STATEMENT: usize = 64;

/// `INSERT_SQL[n - 1]` inserts `n` rows and returns the key of each row it inserted.
static INSERT_SQL: LazyLock<Vec<String>> =
    LazyLock::new(|| (1..=ROWS_PER_STATEMENT).map(insert_sql).collect());

fn insert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let first = row * 6 + 1;
            let params: Vec<String> = (first..first + 6).map(|n| format!("${n}")).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO envelopes (receiver, sender, message_hash, envelope, received_at, expires_at) \
         VALUES {} ON CONFLICT (receiver, message_hash) DO NOTHING RETURNING receiver, message_hash",
        values.join(", ")
    )
}

/// Where batches are committed.
struct Target {
    pool: Pool,
    write_connection: Option<Arc<WriteConnection>>,
}

struct Job {
    envelope: NewEnvelope,
    reply: oneshot::Sender<Result<Inserted, StoreError>>,
}

/// The handle to the writer task.
pub(crate) struct Writer {
    queue: mpsc::Sender<Job>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    envelopes: AtomicU64,
}

/// What the writer has done since start: shows how well inserts are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed by the writer.
    pub commits: u64,
    /// Envelope inserts those transactions held (new and duplicate).
    pub envelopes: u64,
}

impl Writer {
    /// Spawns the writer task on the current runtime.
    /// Spawns the writer task on the current runtime. `write_connection`: SQLite's, which
    /// then commits every batch.
    pub(super) fn start(
        pool: Pool,
        write_connection: Option<Arc<WriteConnection>>,
        options: &StoreOptions,
    ) -> Self {
        let (queue, jobs) = mpsc::channel(options.queue_capacity.max(1));
        let stop = CancellationToken::new();
        let counters = Arc::new(Counters::default());
        let target = Target { pool, write_connection };
        let task = tokio::spawn(run(target, jobs, stop.clone(), options.max_batch.max(1), counters.clone()));
        Self { queue, stop, task: Mutex::new(Some(task)), counters }
    }

    pub(super) fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            envelopes: self.counters.envelopes.load(Ordering::Relaxed),
        }
    }

    /// Queues an insert and waits until its transaction committed (or failed).
    pub(super) async fn insert(&self, envelope: NewEnvelope) -> Result<Inserted, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Job { envelope, reply }).await.map_err(|_| StoreError::ShuttingDown)?;
        answer.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Inserts queued and not yet answered.
    pub(super) fn pending(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Refuses new inserts, commits the queued ones, and waits for the task to end.
    pub(super) async fn shutdown(&self) {
        self.stop.cancel();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "the envelope writer task failed");
        }
    }
}

async fn run(
    pool: Target,
    mut jobs: mpsc::Receiver<Job>,
    stop: CancellationToken,
    max: usize,
    counters: Arc<Counters>,
) {
    loop {
        let first = tokio::select! {
            // Queued work first: a stop request still lets everything queued commit.
            biased;
            job = jobs.recv() => match job {
                Some(job) => job,
                None => return,
            },
            () = stop.cancelled() => break,
        };
        let mut batch = vec![first];
        while batch.len() < max {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit(&pool, batch, &counters).await;
    }
    // Stopping: no new inserts, but everything already queued is committed and answered.
    jobs.close();
    let mut batch = Vec::new();
    while let Some(job) = jobs.recv().await {
        batch.push(job);
        if batch.len() >= max {
            commit(&pool, std::mem::take(&mut batch), &counters).await;
        }
    }
    if !batch.is_empty() {
        commit(&pool, batch, &counters).await;
    }
}

/// Commits `batch` in one transaction and answers every caller; on failure, retries each
/// envelope in its own transaction.
async fn commit(pool: &Target, batch: Vec<Job>, counters: &Counters) {
    let started = Instant::now();
    let size = batch.len();
    let envelopes: Vec<&NewEnvelope> = batch.iter().map(|job| &job.envelope).collect();
    match insert_all(pool, &envelopes).await {
        Ok(outcomes) => {
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters.envelopes.fetch_add(size as u64, Ordering::Relaxed);
            metrics::histogram!(names::WRITE_BATCH_SIZE).record(size as f64);
            metrics::histogram!(names::WRITE_COMMIT_DURATION).record(started.elapsed().as_secs_f64());
            for (job, outcome) in batch.into_iter().zip(outcomes) {
                // A caller that gave up (its request was dropped) no longer listens.
                let _ = job.reply.send(Ok(outcome));
            }
        }
        Err(error) => {
            tracing::warn!(%error, size, "batch insert failed; retrying envelopes one by one");
            for job in batch {
                let outcome = insert_all(pool, &[&job.envelope])
                    .await
                    .map(|o| o.first().copied().unwrap_or(Inserted::Duplicate));
                match &outcome {
                    Ok(_) => {
                        counters.commits.fetch_add(1, Ordering::Relaxed);
                        counters.envelopes.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => tracing::error!(%error, "envelope insert failed"),
                }
                let _ = job.reply.send(outcome);
            }
        }
    }
}

/// Inserts `$envelopes` (each `&NewEnvelope`) on `$connection` with multi-row statements;
/// evaluates to the keys of the rows that went in. A macro, so that one body serves both
/// drivers' connection types.
macro_rules! insert_rows {
    ($connection:expr, $envelopes:expr) => {{
        let envelopes = $envelopes;
        let mut inserted: HashSet<(String, String)> = HashSet::with_capacity(envelopes.len());
        for chunk in envelopes.chunks(ROWS_PER_STATEMENT) {
            let mut query = sqlx::query(INSERT_SQL[chunk.len() - 1].as_str());
            for e in chunk {
                query = query
                    .bind(e.receiver.as_str())
                    .bind(e.sender.as_str())
                    .bind(e.message_hash.to_string())
                    .bind(e.envelope.as_str())
                    .bind(e.received_at_ms)
                    .bind(e.expires_at_ms);
            }
            for row in query.fetch_all(&mut *$connection).await? {
                inserted.insert((row.try_get(0)?, row.try_get(1)?));
            }
        }
        inserted
    }};
}

async fn insert_all(target: &Target, envelopes: &[&NewEnvelope]) -> Result<Vec<Inserted>, StoreError> {
    let inserted = match (&target.pool, &target.write_connection) {
        (Pool::Sqlite(_), Some(writes)) => {
            let owned: Vec<NewEnvelope> = envelopes.iter().map(|&e| e.clone()).collect();
            // Up to one statement's rows are one statement: no savepoint needed around it.
            let statements =
                if owned.len() <= ROWS_PER_STATEMENT { Statements::One } else { Statements::Several };
            writes.write(statements, move |c| Box::pin(async move { Ok(insert_rows!(c, &owned)) })).await?
        }
        (Pool::Sqlite(_), None) => {
            return Err(StoreError::Corrupt("a SQLite store without its write connection".to_owned()));
        }
        (Pool::Postgres(p), _) => {
            let mut tx = p.begin().await?;
            let inserted = insert_rows!(tx, envelopes);
            tx.commit().await?;
            inserted
        }
    };
    Ok(outcomes(envelopes, inserted))
}

/// Which envelopes went in: those whose key the database returned. When one batch holds the
/// same key twice, only the first counts as new (the database skipped the second).
fn outcomes(envelopes: &[&NewEnvelope], mut inserted: HashSet<(String, String)>) -> Vec<Inserted> {
    envelopes
        .iter()
        .map(|e| {
            let key = (e.receiver.as_str().to_owned(), e.message_hash.to_string());
            if inserted.remove(&key) { Inserted::New } else { Inserted::Duplicate }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_number_their_parameters_row_by_row() {
        assert_eq!(
            insert_sql(2),
            "INSERT INTO envelopes (receiver, sender, message_hash, envelope, received_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6), ($7, $8, $9, $10, $11, $12) \
             ON CONFLICT (receiver, message_hash) DO NOTHING RETURNING receiver, message_hash"
        );
        assert_eq!(INSERT_SQL.len(), ROWS_PER_STATEMENT);
        assert!(INSERT_SQL[ROWS_PER_STATEMENT - 1].contains(&format!("${}", ROWS_PER_STATEMENT * 6)));
    }
}
