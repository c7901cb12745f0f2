//! Leases: rows that say which node process does a piece of work that must have one owner.
//!
//! Several node processes may share one PostgreSQL database (docs/scaling.md). Most of their
//! work is shared safely through the database (jobs are claimed with `SKIP LOCKED`), but some
//! must be done by one process at a time: Telegram's long poll (Telegram serves one poller per
//! bot) and the expiry pass. Whoever holds the row `node_leases.name` does it, until
//! `lease_until`, and renews it well before; when the holder dies the row runs out and another
//! process takes it (migration 0014).
//!
//! Why a row and not a PostgreSQL advisory lock: a session-level advisory lock belongs to one
//! pooled connection, which the pool may close or hand to other work, and a lock that dies
//! with a connection gives no bound the operator can read; a row with an expiry also works on
//! SQLite (one process, which always gets it) and shows in the database who holds what.
//!
//! Time is the database's own clock ([`super::clock`]), read in the statement itself, not the
//! caller's: a replica whose clock runs 30 s ahead would otherwise take a live lease, and one
//! 30 s behind keep a dead one.

use std::time::Duration;

use sqlx::Row as _;

use super::clock::db_now_ms;
use super::{Store, StoreError, on_pool, write_on};
use crate::config::Backend;

/// Takes the lease if it is free, run out or already the caller's, and sets its end.
macro_rules! take {
    ($backend:tt) => {
        concat!(
            "INSERT INTO node_leases (name, owner, lease_until) VALUES ($1, $2, ",
            db_now_ms!($backend),
            " + $3) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until \
             WHERE node_leases.owner = excluded.owner OR node_leases.lease_until < ",
            db_now_ms!($backend),
            " RETURNING owner"
        )
    };
}

/// The owner of a lease that has not run out.
macro_rules! holder {
    ($backend:tt) => {
        concat!("SELECT owner FROM node_leases WHERE name = $1 AND lease_until >= ", db_now_ms!($backend))
    };
}

const RELEASE: &str = "DELETE FROM node_leases WHERE name = $1 AND owner = $2";

impl Store {
    /// Takes or renews the lease `name` for `owner`, to run for `held_for` from now by the
    /// database's clock; `true` if `owner` holds it now, `false` if another process does.
    pub async fn take_lease(&self, name: &str, owner: &str, held_for: Duration) -> Result<bool, StoreError> {
        let sql = match self.backend() {
            Backend::Sqlite => take!(sqlite),
            Backend::Postgres => take!(postgres),
        };
        let held_for = i64::try_from(held_for.as_millis()).unwrap_or(i64::MAX);
        let (name, owner) = (name.to_owned(), owner.to_owned());
        write_on!(self, one_statement, c => {
            let row = sqlx::query(sql)
                .bind(name.as_str())
                .bind(owner.as_str())
                .bind(held_for)
                .fetch_optional(&mut *c)
                .await?;
            Ok(row.is_some())
        })
    }

    /// Gives the lease `name` up if `owner` holds it, so that another process takes it at once.
    pub async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        write_on!(self, one_statement, c => {
            sqlx::query(RELEASE).bind(name.as_str()).bind(owner.as_str()).execute(&mut *c).await?;
            Ok(())
        })
    }

    /// Who holds the lease `name` now, if anyone (for tests and operators).
    pub async fn lease_holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        let sql = match self.backend() {
            Backend::Sqlite => holder!(sqlite),
            Backend::Postgres => holder!(postgres),
        };
        let owner: Option<String> = on_pool!(self.pool(), p => sqlx::query(sql)
            .bind(name)
            .fetch_optional(p)
            .await?
            .map(|row| row.try_get("owner"))
            .transpose()?);
        Ok(owner)
    }
}
