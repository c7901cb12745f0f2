//! SQLite's one write connection: every write of the node, committed in groups.
//!
//! SQLite has a single write lock per database. With writes spread over the pool's
//! connections, each waits for the lock in SQLite's busy handler, which *sleeps* (1, 2, 5, 10 …
//! 100 ms) instead of queueing; under load that turned into second-long statements and an
//! engine that idled between commits (docs/benchmarks.md, "Bridge engine"). Each commit is
//! also an fsync (`synchronous=FULL`), so one transaction per write caps the node at a few
//! hundred writes per second however fast the disk is otherwise. So, on SQLite:
//!
//! - one connection, owned by one task, does every write; callers queue [`Write`]s and wait;
//! - the task takes whatever is queued (up to `max_batch`), opens one `BEGIN IMMEDIATE`
//!   transaction, runs each write in a savepoint of its own (a failing write rolls back alone,
//!   and its caller gets its error; its neighbours are not affected), commits once, and only
//!   then answers every caller. There is no timer: at low load a group is one write; under
//!   load groups grow while the previous commit's fsync runs.
//! - a write of a single statement skips the savepoint ([`Statements::One`]):
//!   SQLite undoes a failed statement by itself, and the two extra statements (each a round
//!   trip to the connection's thread) were a good part of the cost of the engine's small
//!   writes. So does a write of statements that may each stay without the others
//!   ([`Statements::Independent`]).
//!
//! A write is answered `Ok` only after COMMIT returned, so "acknowledged" still means durable.
//! If the commit itself fails, every write of the group gets the error (and nothing of the
//! group is in the database); callers treat store errors as transient and try again.
//!
//! PostgreSQL has no single write lock and groups WAL flushes of concurrent commits itself, so
//! there each write runs in its own transaction on the pool ([`write_on!`](super::write_on)).
//!
//! Shutdown: [`WriteConnection::shutdown`] refuses new writes, commits the queued ones, and
//! waits for the task.

use std::sync::Mutex;
use std::time::Instant;

use dm3_bridge_connector::BoxFuture;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Acquire as _, Connection as _, SqliteConnection};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::telemetry::metrics as names;

use super::StoreError;

/// One write, type-erased so that writes of every shape share the queue.
trait Write: Send {
    /// Runs the write inside the group's transaction; keeps its result for [`Write::answer`].
    /// `Err` when the write failed and its savepoint must be rolled back.
    fn run<'c>(&'c mut self, connection: &'c mut SqliteConnection) -> BoxFuture<'c, Result<(), ()>>;
    /// Answers the caller once the group's commit is known: its own result if the group
    /// committed, the commit's error otherwise.
    fn answer(self: Box<Self>, committed: Result<(), &StoreError>);
    /// Whether the write needs a savepoint to fail alone (more than one statement).
    fn needs_savepoint(&self) -> bool;
}

/// A caller's write and where its answer goes.
struct Typed<T, F> {
    body: Option<F>,
    savepoint: bool,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Write for Typed<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
{
    fn run<'c>(&'c mut self, connection: &'c mut SqliteConnection) -> BoxFuture<'c, Result<(), ()>> {
        Box::pin(async move {
            let Some(body) = self.body.take() else { return Ok(()) };
            let result = body(connection).await;
            let failed = result.is_err();
            self.result = Some(result);
            if failed { Err(()) } else { Ok(()) }
        })
    }

    fn answer(self: Box<Self>, committed: Result<(), &StoreError>) {
        let answer = match (committed, self.result) {
            // A write that failed on its own reports its own error, whatever the group did.
            (_, Some(Err(own))) => Err(own),
            (Ok(()), Some(Ok(value))) => Ok(value),
            (Ok(()), None) => Err(StoreError::Corrupt("a queued write was never run".to_owned())),
            (Err(error), _) => Err(StoreError::GroupCommit(error.to_string())),
        };
        // A caller that gave up (its request was dropped) no longer listens.
        let _ = self.reply.send(answer);
    }

    fn needs_savepoint(&self) -> bool {
        self.savepoint
    }
}

/// How many statements a write runs, which decides whether it needs a savepoint to fail alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Statements {
    /// SQLite undoes a failed statement by itself.
    One,
    /// Undone together if one fails: in a savepoint.
    Several,
    /// Several, each true on its own and idempotent (a job's completion and the mapping of
    /// the message it delivered): if a later one fails, the earlier ones may stay, so no
    /// savepoint (two statements fewer).
    Independent,
}

/// The handle to the writing task.
pub(crate) struct WriteConnection {
    queue: mpsc::Sender<Box<dyn Write>>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl WriteConnection {
    /// Spawns the task that owns `connection` on the current runtime; `connect` opens it again
    /// after a group that failed (see [`reopen`]).
    pub(super) fn start(
        connection: SqliteConnection,
        connect: SqliteConnectOptions,
        max_batch: usize,
        capacity: usize,
    ) -> Self {
        let (queue, writes) = mpsc::channel(capacity.max(1));
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(connection, connect, writes, stop.clone(), max_batch.max(1)));
        Self { queue, stop, task: Mutex::new(Some(task)) }
    }

    /// Runs `body` in the next group and waits until that group committed. `body` sees only
    /// its own savepoint (none for [`Statements::One`], which SQLite undoes by itself, and
    /// [`Statements::Independent`]): an `Err` it returns undoes its own statements and no
    /// others.
    pub(crate) async fn write<T, F>(&self, statements: Statements, body: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
    {
        let savepoint = statements == Statements::Several;
        let (reply, answer) = oneshot::channel();
        let write: Box<dyn Write> = Box::new(Typed { body: Some(body), savepoint, result: None, reply });
        self.queue.send(write).await.map_err(|_| StoreError::ShuttingDown)?;
        answer.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Refuses new writes, commits the queued ones, closes the connection and waits for it.
    pub(super) async fn shutdown(&self) {
        self.stop.cancel();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task
            && let Err(error) = task.await
        {
            tracing::error!(%error, "the SQLite write task failed");
        }
    }
}

async fn run(
    mut connection: SqliteConnection,
    connect: SqliteConnectOptions,
    mut writes: mpsc::Receiver<Box<dyn Write>>,
    stop: CancellationToken,
    max: usize,
) {
    loop {
        let first = tokio::select! {
            // Queued work first: a stop request still lets everything queued commit.
            biased;
            write = writes.recv() => match write {
                Some(write) => write,
                None => break,
            },
            () = stop.cancelled() => break,
        };
        let mut group = vec![first];
        while group.len() < max {
            match writes.try_recv() {
                Ok(write) => group.push(write),
                Err(_) => break,
            }
        }
        if !commit(&mut connection, group).await {
            connection = reopen(&connect, connection).await;
        }
    }
    writes.close();
    let mut group = Vec::new();
    while let Some(write) = writes.recv().await {
        group.push(write);
        if group.len() >= max && !commit(&mut connection, std::mem::take(&mut group)).await {
            connection = reopen(&connect, connection).await;
        }
    }
    if !group.is_empty() {
        commit(&mut connection, group).await;
    }
    if let Err(error) = connection.close().await {
        tracing::warn!(%error, "closing the SQLite write connection failed");
    }
}

/// A fresh connection in place of one whose group failed. A COMMIT that fails on a full disk
/// (SQLITE_FULL) or an I/O error has its transaction rolled back by SQLite itself, while sqlx
/// still counts it open: every later BEGIN on that connection then failed ("non-zero
/// transaction depth") and the node wrote nothing until restarted, even once the disk had room
/// again (`tests/fault_sqlite_disk.rs`). A group fails only at BEGIN, a savepoint or COMMIT
/// (a write's own statements are undone in its savepoint), so this is rare.
async fn reopen(connect: &SqliteConnectOptions, old: SqliteConnection) -> SqliteConnection {
    match SqliteConnection::connect_with(connect).await {
        Ok(fresh) => {
            if let Err(error) = old.close().await {
                tracing::debug!(%error, "closing the failed SQLite write connection");
            }
            tracing::info!("the SQLite write connection was reopened after a failed group");
            fresh
        }
        Err(error) => {
            tracing::warn!(%error, "reopening the SQLite write connection failed; the next group tries again");
            old
        }
    }
}

/// Runs `group` in one transaction and answers every write; answers whether it committed.
async fn commit(connection: &mut SqliteConnection, mut group: Vec<Box<dyn Write>>) -> bool {
    let started = Instant::now();
    let size = group.len();
    let committed = run_group(connection, &mut group).await;
    if let Err(error) = &committed {
        tracing::warn!(%error, size, "a group of writes failed to commit");
    } else {
        metrics::histogram!(names::WRITE_GROUP_SIZE).record(size as f64);
        metrics::histogram!(names::WRITE_GROUP_COMMIT_DURATION).record(started.elapsed().as_secs_f64());
    }
    for write in group {
        write.answer(committed.as_ref().map(|_| ()));
    }
    committed.is_ok()
}

async fn run_group(
    connection: &mut SqliteConnection,
    group: &mut [Box<dyn Write>],
) -> Result<(), StoreError> {
    // IMMEDIATE: the write lock is taken at BEGIN, so a write that reads first cannot find
    // its snapshot outdated by a writer outside this task (a migration, a tool) later on.
    let mut transaction = connection.begin_with("BEGIN IMMEDIATE").await?;
    for write in group.iter_mut() {
        if !write.needs_savepoint() {
            // Failed or not, its one statement left nothing half done.
            let _ = write.run(&mut transaction).await;
            continue;
        }
        let mut savepoint = transaction.begin().await?;
        match write.run(&mut savepoint).await {
            Ok(()) => savepoint.commit().await?,
            Err(()) => savepoint.rollback().await?,
        }
    }
    transaction.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::str::FromStr;

    use sqlx::Row;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};

    use super::*;

    async fn open(dir: &tempfile::TempDir) -> (WriteConnection, SqliteConnection) {
        let url = format!("sqlite://{}", dir.path().join("w.sqlite").display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let mut reader = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER NOT NULL CHECK (n >= 0))").execute(&mut reader).await.unwrap();
        let writer = SqliteConnection::connect_with(&options).await.unwrap();
        (WriteConnection::start(writer, options.clone(), 64, 1024), reader)
    }

    /// Inserts `values` in one write (several statements, or one).
    async fn insert(writes: &WriteConnection, values: Vec<i64>) -> Result<u64, StoreError> {
        let statements = if values.len() == 1 { Statements::One } else { Statements::Several };
        insert_as(writes, statements, values).await
    }

    async fn insert_as(
        writes: &WriteConnection,
        statements: Statements,
        values: Vec<i64>,
    ) -> Result<u64, StoreError> {
        writes
            .write(statements, move |c| {
                Box::pin(async move {
                    let mut n = 0;
                    for v in values {
                        n += sqlx::query("INSERT INTO t (n) VALUES ($1)")
                            .bind(v)
                            .execute(&mut *c)
                            .await?
                            .rows_affected();
                    }
                    Ok(n)
                })
            })
            .await
    }

    #[tokio::test]
    async fn a_failing_write_fails_alone_and_its_group_commits() {
        let dir = tempfile::tempdir().unwrap();
        let (writes, mut reader) = open(&dir).await;
        // Queued together so that they share groups: good and bad writes of both shapes.
        let (a, b, c, d, e) = tokio::join!(
            insert(&writes, vec![1, 2]),
            insert(&writes, vec![3, -1]), // its first row must be undone with it
            insert(&writes, vec![4]),
            insert(&writes, vec![-2]),
            insert(&writes, vec![5, 6]),
        );
        assert_eq!(a.unwrap(), 2);
        assert!(matches!(b, Err(StoreError::Database(_))), "{b:?}");
        assert_eq!(c.unwrap(), 1);
        assert!(matches!(d, Err(StoreError::Database(_))), "{d:?}");
        assert_eq!(e.unwrap(), 2);
        let rows = sqlx::query("SELECT n FROM t ORDER BY n").fetch_all(&mut reader).await.unwrap();
        let stored: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(stored, [1, 2, 4, 5, 6]);
        writes.shutdown().await;
    }

    #[tokio::test]
    async fn independent_statements_before_a_failure_stay() {
        let dir = tempfile::tempdir().unwrap();
        let (writes, mut reader) = open(&dir).await;
        let (a, b) = tokio::join!(
            insert_as(&writes, Statements::Independent, vec![1, -1, 2]),
            insert_as(&writes, Statements::Independent, vec![3, 4]),
        );
        assert!(matches!(a, Err(StoreError::Database(_))), "{a:?}");
        assert_eq!(b.unwrap(), 2);
        let rows = sqlx::query("SELECT n FROM t ORDER BY n").fetch_all(&mut reader).await.unwrap();
        let stored: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        // The failing write's first row stays (no savepoint), its rows after the failure never ran.
        assert_eq!(stored, [1, 3, 4]);
        writes.shutdown().await;
    }

    #[tokio::test]
    async fn shutdown_commits_what_was_queued_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (writes, mut reader) = open(&dir).await;
        let writes = std::sync::Arc::new(writes);
        let mut queued = tokio::task::JoinSet::new();
        for n in 0..50 {
            let writes = writes.clone();
            queued.spawn(async move { insert(&writes, vec![n]).await });
        }
        // On this single-threaded runtime one yield lets every task queue its write.
        tokio::task::yield_now().await;
        writes.shutdown().await;
        while let Some(answer) = queued.join_next().await {
            assert!(answer.unwrap().is_ok());
        }
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM t").fetch_one(&mut reader).await.unwrap().get(0);
        assert_eq!(count, 50);
        assert!(matches!(insert(&writes, vec![1]).await, Err(StoreError::ShuttingDown)));
    }
}
