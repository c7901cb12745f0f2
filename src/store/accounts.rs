//! Relay accounts: the names that registered with this node as their delivery service.
//!
//! The reference DS keys accounts by the Ethereum address behind the name and overwrites them
//! on every `POST /profile` (PROTOCOL.md §9, P15, P18). We key by the normalized name (the
//! routes and tokens are name-bound anyway) and keep the address beside it; an upsert replaces
//! address and profile but keeps the first `created_at`. The signed profile is stored as the
//! exact JSON text received, because its signature covers that text's canonical form.

use sqlx::Row;

use super::{EnsName, Store, StoreError, on_pool};

/// A registered account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: EnsName,
    /// The address the name resolved to at registration, as text (`0x…`).
    pub address: String,
    /// The signed user profile, JSON text as received.
    pub profile: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl Store {
    /// Creates the account or replaces its address and profile.
    pub async fn upsert_account(
        &self,
        name: &EnsName,
        address: &str,
        profile_json: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO accounts (name, address, profile, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (name) DO UPDATE SET \
             address = excluded.address, profile = excluded.profile, updated_at = excluded.updated_at";
        on_pool!(self.pool(), p => sqlx::query(SQL)
            .bind(name.as_str())
            .bind(address)
            .bind(profile_json)
            .bind(now_ms)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The account registered under `name`, if any.
    pub async fn get_account(&self, name: &EnsName) -> Result<Option<Account>, StoreError> {
        const SQL: &str = "SELECT name, address, profile, created_at, updated_at \
             FROM accounts WHERE name = $1";
        let row = on_pool!(self.pool(), p => {
            match sqlx::query(SQL).bind(name.as_str()).fetch_optional(p).await? {
                None => None,
                Some(row) => Some((
                    row.try_get::<String, _>("name")?,
                    row.try_get::<String, _>("address")?,
                    row.try_get::<String, _>("profile")?,
                    row.try_get::<i64, _>("created_at")?,
                    row.try_get::<i64, _>("updated_at")?,
                )),
            }
        });
        row.map(|(name, address, profile, created_at_ms, updated_at_ms)| {
            Ok(Account { name: EnsName::new(name)?, address, profile, created_at_ms, updated_at_ms })
        })
        .transpose()
    }
}
