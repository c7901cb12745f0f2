//! Shared harness of the integration tests: real databases, real servers.
//!
//! - [`postgres`]: one throwaway PostgreSQL cluster per test binary, a fresh database per test;
//! - [`TestDb`]: a database of either backend, and `on_both_backends!`, for suites that must
//!   run on both;
//! - [`node`]: a data directory made by `init` and a node serving on `127.0.0.1:0`;
//! - [`js`]: a Node.js helper from `interop/` (the reference libraries as a DM3 client);
//! - [`names`]: such a node with virtual identities enabled, and an admin API client;
//! - [`bridge`]: the bridge node of the end-to-end tests: start, graceful stop and restart, and
//!   waiting until its queues settle;
//! - [`pause`]: a sender the test can hold still between two sends;
//! - [`claims`]: a gateway user's claim, as their client makes it; [`logs`]: the node's logs,
//!   captured to assert what they never hold;
//!
//! Not every test binary uses every helper.
#![allow(dead_code, unused_macros, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod bridge;
pub mod claims;
pub mod crash;
pub mod js;
pub mod logs;
pub mod names;
pub mod node;
pub mod numbered;
pub mod pause;
pub mod postgres;

use dm3_bridge::config::DatabaseUrl;
use dm3_bridge::store::{Store, StoreOptions};

/// Turns each `async fn name(db: &TestDb)` scenario of the calling test file into two
/// tests, `sqlite::name` and `postgres::name`, each on a fresh database: every storage
/// behaviour is proven on both backends by the same code.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::support::TestDb::sqlite();
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::support::TestDb::postgres().await;
                    super::$name(&db).await;
                }
            )*
        }
    };
}

/// A fresh, empty database, and whatever keeps it alive.
pub struct TestDb {
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A SQLite file in a new temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = DatabaseUrl::sqlite_file(&dir.path().join("test.sqlite"));
        Self { url, _dir: Some(dir) }
    }

    /// A new database in the shared throwaway PostgreSQL cluster.
    pub async fn postgres() -> Self {
        Self { url: postgres::fresh_database().await, _dir: None }
    }

    pub async fn open(&self) -> Store {
        Store::open(&self.url, &StoreOptions::default())
            .await
            .unwrap_or_else(|e| panic!("opening {}: {e}", self.url))
    }
}

impl TestDb {
    /// Runs `sql` (a statement written in the test, valid on both backends) on the database
    /// beside the node that has it open; answers the rows it changed.
    pub async fn execute(&self, sql: &'static str) -> u64 {
        match &self._dir {
            Some(_) => {
                let pool = sqlx::SqlitePool::connect(self.url.expose()).await.unwrap();
                let done = sqlx::query(sql).execute(&pool).await.unwrap().rows_affected();
                pool.close().await;
                done
            }
            None => {
                let pool = sqlx::PgPool::connect(self.url.expose()).await.unwrap();
                let done = sqlx::query(sql).execute(&pool).await.unwrap().rows_affected();
                pool.close().await;
                done
            }
        }
    }

    /// Everything the database holds, as text, to search for what must never be there (a key,
    /// a plaintext): on SQLite the bytes of its files (the database, its WAL and journal; freed
    /// pages included), on PostgreSQL every row of every table as JSON.
    pub async fn all_text(&self) -> String {
        match &self._dir {
            Some(dir) => {
                let mut text = String::new();
                for entry in std::fs::read_dir(dir.path()).unwrap() {
                    let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                    text.push_str(&String::from_utf8_lossy(&bytes));
                }
                text
            }
            None => {
                let pool = sqlx::PgPool::connect(self.url.expose()).await.unwrap();
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                let mut text = String::new();
                for table in tables {
                    // The names come from the catalogue just read, not from outside.
                    let sql = format!(
                        "SELECT coalesce(string_agg(to_jsonb(t)::text, E'\\n'), '') FROM \"{table}\" t"
                    );
                    let rows: String =
                        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&pool).await.unwrap();
                    text.push_str(&rows);
                }
                pool.close().await;
                text
            }
        }
    }
}
