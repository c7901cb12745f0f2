//! Relay accounts: the names that registered with this node as their delivery service.
//!
//! The reference DS keys accounts by the Ethereum address behind the name and overwrites them
//! on every `POST /profile` (docs/protocol.md §9, P15, P18). We key by the normalized name (the
//! routes and tokens are name-bound anyway) and keep the address beside it; an upsert replaces
//! address and profile but keeps the first `created_at`. The signed profile is stored as the
//! exact JSON text received, because its signature covers that text's canonical form.
//!
//! Every submit must check that its receiver has an account here. That check is answered from
//! memory once a name was seen ([`KnownAccounts`]): accounts are never deleted, so "this name
//! has an account" can never become false, not even when another replica shares the
//! database, and a remembered yes is always right. A no is never remembered: it is asked of
//! the database each time, so a registration through any replica counts at once.

use std::collections::HashSet;
use std::sync::Mutex;

use dm3::ens::EnsName;
use sqlx::Row;

use super::{Store, StoreError, ids, on_pool, write_on};

/// Names known to have an account (see the module documentation for why this cannot go
/// stale). Bounded: when full it starts over, which only costs a query per name.
#[derive(Default)]
pub(super) struct KnownAccounts {
    names: Mutex<HashSet<EnsName>>,
}

impl KnownAccounts {
    const MAX_ENTRIES: usize = 100_000;

    fn contains(&self, name: &EnsName) -> bool {
        self.names.lock().is_ok_and(|names| names.contains(name))
    }

    fn remember(&self, name: &EnsName) {
        if let Ok(mut names) = self.names.lock() {
            if names.len() >= Self::MAX_ENTRIES {
                names.clear();
            }
            names.insert(name.clone());
        }
    }
}

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

/// What [`Store::create_account`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountCreation {
    /// The account is new: this call created it.
    Created,
    /// The name already had an account; nothing was changed.
    Exists,
}

impl Store {
    /// Creates the account if the name has none; never touches an existing one. Two racing
    /// first registrations of one name see one `Created` between them (the insert is one
    /// statement on the primary key), which is what lets the delivery service give a
    /// session to the first registration only.
    pub async fn create_account(
        &self,
        name: &EnsName,
        address: &str,
        profile_json: &str,
        now_ms: i64,
    ) -> Result<AccountCreation, StoreError> {
        const SQL: &str = "INSERT INTO accounts (name, address, profile, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO NOTHING";
        let (owned_name, address, profile_json) = (name.clone(), address.to_owned(), profile_json.to_owned());
        let inserted = write_on!(self, one_statement, c => Ok(sqlx::query(SQL)
            .bind(owned_name.as_str())
            .bind(address.as_str())
            .bind(profile_json.as_str())
            .bind(now_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        self.known_accounts().remember(name);
        Ok(if inserted == 1 { AccountCreation::Created } else { AccountCreation::Exists })
    }

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
        let (owned_name, address, profile_json) = (name.clone(), address.to_owned(), profile_json.to_owned());
        write_on!(self, one_statement, c => {
            sqlx::query(SQL)
                .bind(owned_name.as_str())
                .bind(address.as_str())
                .bind(profile_json.as_str())
                .bind(now_ms)
                .execute(&mut *c)
                .await?;
            Ok(())
        })?;
        self.known_accounts().remember(name);
        Ok(())
    }

    /// Whether `name` has an account; from memory once it was seen (see the module docs).
    pub async fn account_exists(&self, name: &EnsName) -> Result<bool, StoreError> {
        if self.known_accounts().contains(name) {
            return Ok(true);
        }
        const SQL: &str = "SELECT 1 FROM accounts WHERE name = $1";
        let exists = on_pool!(self.pool(), p => sqlx::query(SQL)
            .bind(name.as_str())
            .fetch_optional(p)
            .await?
            .is_some());
        if exists {
            self.known_accounts().remember(name);
        }
        Ok(exists)
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
            Ok(Account { name: ids::stored_name(&name)?, address, profile, created_at_ms, updated_at_ms })
        })
        .transpose()
    }
}
