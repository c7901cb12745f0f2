//! The database's clock: the one clock every replica of a node agrees on.
//!
//! Each replica reads it every few seconds and keeps its own clock on it (`crate::clock`,
//! `crate::database_clock`); the replica leases compare against it in their statements
//! ([`super::leases`]). One expression per backend, so that both read it the same way.

use std::time::Instant;

use super::{Store, StoreError, on_pool};
use crate::config::Backend;

/// The database's time in milliseconds since the epoch, per backend, as a literal for
/// `concat!`. PostgreSQL's `clock_timestamp()` is the time at the call, not the transaction's
/// start; SQLite's `'now'` is the time of the statement.
macro_rules! db_now_ms {
    (sqlite) => {
        "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
    };
    (postgres) => {
        "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
    };
}
pub(crate) use db_now_ms;

/// A reading of the database's clock, with when it was asked and answered on this host's
/// monotonic clock (the reading stands for a moment between them).
#[derive(Debug, Clone, Copy)]
pub struct DatabaseTime {
    pub now_ms: i64,
    pub asked: Instant,
    pub answered: Instant,
}

impl Store {
    /// Reads the database's clock.
    pub async fn database_time(&self) -> Result<DatabaseTime, StoreError> {
        let sql = match self.backend() {
            Backend::Sqlite => concat!("SELECT ", db_now_ms!(sqlite)),
            Backend::Postgres => concat!("SELECT ", db_now_ms!(postgres)),
        };
        let asked = Instant::now();
        let now_ms: i64 = on_pool!(self.pool(), p => sqlx::query_scalar(sql).fetch_one(p).await?);
        Ok(DatabaseTime { now_ms, asked, answered: Instant::now() })
    }
}
