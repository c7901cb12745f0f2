//! Olm accounts of ghost devices, sealed (migration 0020): the rows behind the Matrix
//! connector's `OlmStore` ([`crate::bridges::matrix::olm_store`]).
//!
//! The store sees only sealed bytes; sealing and opening are the caller's, under the master
//! key. What the store guarantees is the one thing a lease cannot: a save names the version it
//! read and writes only over that version, in one statement, so of two processes that read the
//! same account only the first save lands (docs/engine.md, "Encrypted rooms: plan").

use sqlx::Row as _;

use super::{Store, StoreError, on_pool, write_on};

/// A stored account, still sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OlmAccountRow {
    pub device_id: String,
    pub sealed: Vec<u8>,
    pub version: i64,
    pub device_published: bool,
}

/// A save of an account over the version it was read at.
#[derive(Debug, Clone)]
pub struct OlmAccountSave {
    pub user_id: String,
    pub device_id: String,
    pub sealed: Vec<u8>,
    pub device_published: bool,
    /// The version read; `None` to create the row.
    pub expected: Option<i64>,
    pub now_ms: i64,
}

pub(super) const CREATE: &str = "INSERT INTO matrix_olm_accounts \
     (user_id, device_id, sealed, version, device_published, updated_at) VALUES ($1, $2, $3, 1, $4, $5) \
     ON CONFLICT (user_id) DO NOTHING";
pub(super) const UPDATE: &str = "UPDATE matrix_olm_accounts \
     SET device_id = $2, sealed = $3, version = version + 1, device_published = $4, updated_at = $5 \
     WHERE user_id = $1 AND version = $6";

/// Runs `save` on `$c`: the number of rows written (1, or 0 if the row was not at the version).
macro_rules! save_account_on {
    ($c:expr, $save:expr) => {{
        let save = $save;
        let query = match save.expected {
            None => sqlx::query($crate::store::olm_accounts::CREATE),
            Some(_) => sqlx::query($crate::store::olm_accounts::UPDATE),
        };
        let query = query
            .bind(save.user_id.as_str())
            .bind(save.device_id.as_str())
            .bind(save.sealed.as_slice())
            .bind(i64::from(save.device_published))
            .bind(save.now_ms);
        let query = match save.expected {
            Some(version) => query.bind(version),
            None => query,
        };
        query.execute($c).await?.rows_affected()
    }};
}
pub(super) use save_account_on;

impl OlmAccountSave {
    /// The version the row has once this save landed.
    pub fn next_version(&self) -> i64 {
        self.expected.map_or(1, |v| v + 1)
    }
}

impl Store {
    /// `user_id`'s account, if it has one.
    pub async fn olm_account(&self, user_id: &str) -> Result<Option<OlmAccountRow>, StoreError> {
        const SQL: &str =
            "SELECT device_id, sealed, version, device_published FROM matrix_olm_accounts WHERE user_id = $1";
        on_pool!(self.pool(), p => match sqlx::query(SQL).bind(user_id).fetch_optional(p).await? {
            None => Ok(None),
            Some(row) => Ok(Some(OlmAccountRow {
                device_id: row.try_get("device_id")?,
                sealed: row.try_get("sealed")?,
                version: row.try_get("version")?,
                device_published: row.try_get::<i64, _>("device_published")? != 0,
            })),
        })
    }

    /// Writes the account if its row is at `save.expected` (or absent, for `None`): the new
    /// version, or `None` if the row was elsewhere and nothing was written.
    pub async fn save_olm_account(&self, save: OlmAccountSave) -> Result<Option<i64>, StoreError> {
        let next = save.next_version();
        let written = write_on!(self, one_statement, c => Ok(save_account_on!(&mut *c, &save)))?;
        Ok((written == 1).then_some(next))
    }
}
