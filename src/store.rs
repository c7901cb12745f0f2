//! The repository layer: one API over SQLite and PostgreSQL.
//!
//! Why an enum over the two native pools, not `sqlx::Any`:
//! - `Any` decodes through its own small type set and re-checks every value at run time; the
//!   native drivers give us their exact types (BIGINT ↔ `i64`, TEXT ↔ `String`) on both sides.
//! - The backends must differ where it matters: SQLite needs WAL, `synchronous=FULL` and a busy
//!   timeout on every connection; PostgreSQL claims engine jobs with
//!   `FOR UPDATE SKIP LOCKED` ([`jobs`]), which SQLite has no equivalent for. With an enum the few
//!   backend-specific statements are an ordinary `match`.
//! - Everything else is written once: the SQL uses `$1`-style placeholders, which both drivers
//!   accept, and `on_pool!` expands one body for each arm, so each copy is type-checked
//!   against its own driver.
//!
//! Durability: a write is acknowledged only after its transaction committed. On SQLite that
//! means WAL with `synchronous=FULL` (the WAL is fsynced at every commit, so an acknowledged
//! envelope survives `kill -9` and power loss). On SQLite every write goes through one write
//! connection that commits concurrent writes together ([`write_connection`], [`write_on!`]),
//! so the cost of one fsync is shared by a whole group and no writer waits in SQLite's
//! sleeping busy handler; envelope inserts, the relay's hot path, are first batched into
//! multi-row statements ([`writer`]).
//!
//! Time is passed in by the caller (milliseconds since the epoch): the postmark timestamp
//! and the stored `received_at` must be the same number, and tests need to move the clock.
//!
//! Files: [`ids`] (names and hashes as rows hold them), [`accounts`], [`envelopes`], [`challenges`],
//! [`sessions`], [`writer`], [`write_connection`], the virtual identities and their sealed keys
//! ([`identities`]), the engine's [`jobs`], [`portals`] and [`message_map`], the Telegram
//! connector's chat state ([`telegram`]), the Matrix ghost devices' sealed Olm accounts
//! ([`olm_accounts`]) and their Olm and Megolm sessions ([`olm_sessions`]), members' device
//! lists ([`device_lists`]) and senders' pinned master keys ([`cross_signing_pins`]), the [`leases`] of work one process does at a time, and
//! `migrations` (the embedded SQL of `migrations/<backend>/`).

pub mod accounts;
pub mod blocks;
pub mod challenges;
pub mod clock;
pub mod consent;
pub mod cross_signing_pins;
pub mod device_lists;
pub mod disk;
pub mod envelopes;
pub mod identities;
pub mod ids;
pub mod jobs;
pub mod leases;
pub mod megolm_indices;
pub mod megolm_outbound;
pub mod message_map;
mod migrations;
pub mod olm_accounts;
pub mod olm_sessions;
pub mod portals;
mod recent_portals;
pub mod sessions;
pub mod telegram;
pub mod telegram_aliases;
pub mod to_device_inbox;
pub(crate) mod write_connection;
pub mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::Row as _;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use dm3::ens::EnsName;

use crate::config::{Backend, DatabaseUrl};

pub use accounts::{Account, AccountCreation};
pub use blocks::{Blocked, MAX_BLOCKS_PER_IDENTITY};
pub use challenges::{Challenge, ChallengeId, MAX_LIVE_CHALLENGES};
pub use cross_signing_pins::CrossSigningPin;
pub use device_lists::{DEVICE_LIST_MAX_AGE_MS, DeviceListSave, DeviceRow, KeptDeviceList};
pub use envelopes::{Acknowledgement, Expired, IncomingLimits, Inserted, NewEnvelope, StoredEnvelope};
pub use identities::{Counterparty, Custody, IdentityRecord, SealedKey, Switched};
pub use ids::InvalidId;
pub use jobs::{
    BatchKey, CappedInsert, ClaimedJob, Completed, JobChange, JobCount, JobFilter, JobId, JobRecord,
    JobState, Lease, MAX_JOBS_PAGE, NewJob, NewJobs, QueueName, StateFilter,
};
pub use megolm_indices::{MEGOLM_INDICES_KEPT_PER_KEY, MegolmIndex};
pub use megolm_outbound::{MegolmOutboundRow, MegolmOutboundSave, MegolmStep};
pub use message_map::{MappedMessage, NewMapping};
pub use olm_accounts::{OlmAccountRow, OlmAccountSave};
pub use olm_sessions::{MegolmInboundRow, MegolmInboundSave, OlmSessionRow, OlmSessionSave, OlmStep};
pub use portals::{Consent, NewPortal, Portal, PortalActivity, PortalState};
pub use recent_portals::PORTAL_READS_REUSED_FOR;
pub use sessions::{Session, TokenHash};
pub use telegram_aliases::{AliasBinding, AliasLink, Bound};
pub use to_device_inbox::{ToDeviceKeep, ToDeviceRow};
pub use writer::WriterStats;

/// Expands `$body` once per backend with `$p` bound to that backend's pool, so that one piece
/// of SQL-running code serves both and is type-checked against each driver.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::store::Pool::Sqlite($p) => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs `$body` as one write transaction: on SQLite in the next group of the one write
/// connection ([`write_connection`]), on PostgreSQL in a transaction of its own on the pool.
/// `$c` is the connection (`&mut SqliteConnection` or `&mut PgConnection`); `$body` evaluates
/// to `Result<T, StoreError>`, and an `Err` undoes its statements. It runs on another task, so
/// it may use only what it owns: clone what it needs before.
///
/// `write_on!(store, one_statement, c => …)` is for a body that runs exactly one statement:
/// it needs no savepoint on SQLite (SQLite undoes a failed statement by itself) and no
/// transaction on PostgreSQL. `write_on!(store, independent_statements, c => …)` is for
/// statements that may each stay when a later one fails
/// ([`Statements::Independent`](write_connection::Statements::Independent)): no savepoint on
/// SQLite; a transaction still on PostgreSQL, where it saves commits.
macro_rules! write_on {
    ($store:expr, $c:ident => $body:expr) => {
        $crate::store::write_on!(@ $store, $crate::store::write_connection::Statements::Several, $c => $body)
    };
    ($store:expr, one_statement, $c:ident => $body:expr) => {
        $crate::store::write_on!(@ $store, $crate::store::write_connection::Statements::One, $c => $body)
    };
    ($store:expr, independent_statements, $c:ident => $body:expr) => {
        $crate::store::write_on!(@ $store, $crate::store::write_connection::Statements::Independent, $c => $body)
    };
    (@ $store:expr, $statements:expr, $c:ident => $body:expr) => {
        match $store.pool() {
            $crate::store::Pool::Sqlite(_) => {
                $store.write_connection()?.write($statements, move |$c| Box::pin(async move { $body })).await
            }
            $crate::store::Pool::Postgres(p) => {
                $crate::store::write_postgres(p, $statements, move |$c| Box::pin(async move { $body })).await
            }
        }
    };
}
pub(crate) use write_on;

/// The connection pool of whichever backend the URL chose.
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// SQLite only: the page cache of each read connection of the pool, in KiB.
///
/// SQLite's default is 2 MiB a connection, kept as long as the connection lives, and the pool
/// keeps up to `max_connections` of them open for ten minutes after its last use: a burst of
/// reads over a large database (10,000 identities read through the admin API) left the node
/// 17 MiB larger at rest, all of it page caches (`sqlite3_memory_used`, docs/benchmarks.md,
/// "Idle memory"). Reads of rows by key touch a handful of pages, and the kernel's page cache
/// keeps the file's pages anyway, so a reader's own cache need only hold the hot inner pages of
/// the indexes. The write connection keeps the default: its pages are the ones it rewrites.
const SQLITE_READ_CACHE_KIB: u32 = 512;

/// Tuning of the store; the defaults suit a small node.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// SQLite only: how long a statement waits for a lock held by another connection.
    pub busy_timeout: Duration,
    /// Most envelope inserts committed in one transaction, and (SQLite) most writes in one
    /// group of the write connection.
    pub max_batch: usize,
    /// Inserts that may wait for the writer (and, on SQLite, writes that may wait for the
    /// write connection) before callers are slowed down.
    pub queue_capacity: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            busy_timeout: Duration::from_secs(5),
            max_batch: 512,
            queue_capacity: 8_192,
        }
    }
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("applying the database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0}: expected sqlite://PATH or postgres://…")]
    UnsupportedUrl(DatabaseUrl),
    #[error("a stored value is invalid: {0}")]
    Invalid(#[from] InvalidId),
    #[error("a stored row does not hold what the schema promises: {0}")]
    Corrupt(String),
    #[error("the stored identity {name} is invalid: {reason}")]
    CorruptIdentity { name: String, reason: String },
    #[error("the store is shutting down")]
    ShuttingDown,
    #[error("the transaction this write was part of failed to commit: {0}")]
    GroupCommit(String),
    #[error("the operating system's random generator failed")]
    Random,
    /// SQLite only: its disk has less than [`disk::MIN_FREE_BYTES`] free.
    #[error("the disk of the database is full: {free_bytes} bytes free")]
    DiskFull { free_bytes: u64 },
    #[error("reading the free space of the database's disk failed: {0}")]
    DiskSpace(#[source] std::io::Error),
}

/// The node's database: cheap to clone, shared by all request handlers.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    backend: Backend,
    writer: writer::Writer,
    /// SQLite only: the connection that does every write.
    write_connection: Option<Arc<write_connection::WriteConnection>>,
    /// SQLite only: the database file, whose disk [`Store::ping`] checks.
    sqlite_file: Option<std::path::PathBuf>,
    known_accounts: accounts::KnownAccounts,
    recent_portals: recent_portals::RecentPortals,
}

impl Store {
    /// Connects, applies the migrations of the backend, and starts the envelope writer.
    /// Must run inside a Tokio runtime.
    pub async fn open(url: &DatabaseUrl, options: &StoreOptions) -> Result<Self, StoreError> {
        let backend = url.backend().ok_or_else(|| StoreError::UnsupportedUrl(url.clone()))?;
        let mut sqlite_file = None;
        let (pool, write_connection) = match backend {
            Backend::Sqlite => {
                let connect = SqliteConnectOptions::from_str(url.expose())?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(options.busy_timeout)
                    .foreign_keys(true);
                sqlite_file = Some(connect.get_filename().to_owned());
                // A negative cache_size is in KiB (positive: pages).
                let read_connect = connect.clone().pragma("cache_size", format!("-{SQLITE_READ_CACHE_KIB}"));
                let pool = SqlitePoolOptions::new()
                    .max_connections(options.max_connections)
                    .connect_with(read_connect)
                    .await?;
                let pool = Pool::Sqlite(pool);
                // Migrated before the write connection opens, so that it sees the schema.
                migrations::run(&pool).await?;
                let connection = sqlx::SqliteConnection::connect_with(&connect).await?;
                let writes = write_connection::WriteConnection::start(
                    connection,
                    connect.clone(),
                    options.max_batch,
                    options.queue_capacity,
                );
                (pool, Some(Arc::new(writes)))
            }
            Backend::Postgres => {
                let pool = Pool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(options.max_connections)
                        .acquire_timeout(Duration::from_secs(10))
                        .connect(url.expose())
                        .await?,
                );
                migrations::run(&pool).await?;
                (pool, None)
            }
        };
        let writer = writer::Writer::start(pool.clone(), write_connection.clone(), options);
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                backend,
                writer,
                write_connection,
                sqlite_file,
                known_accounts: Default::default(),
                recent_portals: Default::default(),
            }),
        })
    }

    /// Which backend this store runs on.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    pub(crate) fn writer(&self) -> &writer::Writer {
        &self.inner.writer
    }

    /// The connection that does every SQLite write ([`write_on!`]).
    pub(crate) fn write_connection(&self) -> Result<&write_connection::WriteConnection, StoreError> {
        self.inner
            .write_connection
            .as_deref()
            .ok_or_else(|| StoreError::Corrupt("a SQLite store without its write connection".to_owned()))
    }

    fn known_accounts(&self) -> &accounts::KnownAccounts {
        &self.inner.known_accounts
    }

    fn recent_portals(&self) -> &recent_portals::RecentPortals {
        &self.inner.recent_portals
    }

    /// Lets go of the portals read too long ago to be reused (`crate::housekeeping`).
    pub fn sweep_recent_reads(&self) {
        self.inner.recent_portals.sweep();
    }

    /// The `name, created_at, expires_at` of the row that `sql` finds by one text key: the
    /// shape that challenges and sessions share (a name's record that lives for a while).
    async fn get_name_lifetime(
        &self,
        sql: &'static str,
        key: &str,
    ) -> Result<Option<NameLifetime>, StoreError> {
        let row = on_pool!(self.pool(), p => {
            match sqlx::query(sql).bind(key).fetch_optional(p).await? {
                None => None,
                Some(row) => Some((
                    row.try_get::<String, _>("name")?,
                    row.try_get::<i64, _>("created_at")?,
                    row.try_get::<i64, _>("expires_at")?,
                )),
            }
        });
        row.map(|(name, created_at_ms, expires_at_ms)| {
            Ok(NameLifetime { name: ids::stored_name(&name)?, created_at_ms, expires_at_ms })
        })
        .transpose()
    }

    /// Whether the database answers a trivial query (for `GET /ready`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self.pool(), p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        // A full disk fails no read, only the writes (`store/disk.rs`).
        if let Some(file) = &self.inner.sqlite_file {
            let free_bytes = disk::free_bytes(file).map_err(StoreError::DiskSpace)?;
            if free_bytes < disk::MIN_FREE_BYTES {
                return Err(StoreError::DiskFull { free_bytes });
            }
        }
        Ok(())
    }

    /// Commits and inserts of the envelope writer so far.
    pub fn writer_stats(&self) -> writer::WriterStats {
        self.inner.writer.stats()
    }

    /// Envelope inserts accepted but not yet committed.
    pub fn pending_writes(&self) -> usize {
        self.inner.writer.pending()
    }

    /// Stops taking inserts, commits every insert already queued, then closes the pool.
    /// Inserts attempted afterwards fail with [`StoreError::ShuttingDown`].
    pub async fn close(&self) {
        self.inner.writer.shutdown().await;
        if let Some(writes) = &self.inner.write_connection {
            writes.shutdown().await;
        }
        on_pool!(self.pool(), p => p.close().await);
    }
}

/// [`write_on!`] on PostgreSQL: `body` in a transaction of its own (one statement is one).
pub(crate) async fn write_postgres<T, F>(
    pool: &PgPool,
    statements: write_connection::Statements,
    body: F,
) -> Result<T, StoreError>
where
    F: for<'c> FnOnce(
        &'c mut sqlx::PgConnection,
    ) -> dm3_bridge_connector::BoxFuture<'c, Result<T, StoreError>>,
{
    if statements == write_connection::Statements::One {
        let mut connection = pool.acquire().await?;
        return body(&mut connection).await;
    }
    let mut transaction = pool.begin().await?;
    let value = body(&mut transaction).await?;
    transaction.commit().await?;
    Ok(value)
}

/// A name with the creation and expiry times (ms) of its record.
struct NameLifetime {
    name: EnsName,
    created_at_ms: i64,
    expires_at_ms: i64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use sqlx::Row;

    /// The durability promise rests on these two settings on every pooled connection.
    #[tokio::test]
    async fn sqlite_runs_in_wal_with_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::sqlite_file(&dir.path().join("t.sqlite"));
        let store = Store::open(&url, &StoreOptions::default()).await.unwrap();
        let Pool::Sqlite(pool) = store.pool() else { panic!("expected SQLite") };
        let mode: String = sqlx::query("PRAGMA journal_mode").fetch_one(pool).await.unwrap().get(0);
        let sync: i64 = sqlx::query("PRAGMA synchronous").fetch_one(pool).await.unwrap().get(0);
        let busy: i64 = sqlx::query("PRAGMA busy_timeout").fetch_one(pool).await.unwrap().get(0);
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
        assert_eq!(busy, 5_000);
        store.close().await;
    }

    /// A reader's page cache is what a node keeps at rest after a burst of reads, per pooled
    /// connection (docs/benchmarks.md, "Idle memory").
    #[tokio::test]
    async fn sqlite_read_connections_keep_a_small_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::sqlite_file(&dir.path().join("t.sqlite"));
        let store = Store::open(&url, &StoreOptions::default()).await.unwrap();
        let Pool::Sqlite(pool) = store.pool() else { panic!("expected SQLite") };
        let mut connections = Vec::new();
        for _ in 0..4 {
            connections.push(pool.acquire().await.unwrap());
        }
        for connection in &mut connections {
            let cache: i64 =
                sqlx::query("PRAGMA cache_size").fetch_one(&mut **connection).await.unwrap().get(0);
            assert_eq!(cache, -i64::from(SQLITE_READ_CACHE_KIB), "a negative cache_size is in KiB");
        }
        drop(connections);
        store.close().await;
    }
}
