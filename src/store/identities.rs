//! The identity tables (`migrations/*/0003_identities.sql`) behind one small repository API.
//!
//! The same SQL runs on SQLite and PostgreSQL through `on_pool!` (writes: `write_on!`), like
//! every other table of the store. Rows are turned into typed records here, so a row that does
//! not parse (a hand-edited database) is a named error ([`StoreError::CorruptIdentity`]), never
//! a panic or a silently wrong answer. What the rows mean (sealing, rotation, the caches of
//! recent reads) is the identity vault's ([`crate::identities`]); the store only keeps them.
//!
//! Changes that touch both tables (create, rotate, delete, the custody switch) run in one
//! transaction. Rotation and the switch are optimistic: they only apply if the identity is
//! still in the custody and at the version the caller read, so two concurrent changes cannot
//! both win.
//!
//! An identity's [`Custody`] is one column and one enum (migration 0019): a self-custody row
//! has no `identity_keys` row, and the switch to it deletes them in the same transaction that
//! changes its address and profile (docs/gateway.md section 4).

use alloy_primitives::Address;
use dm3::crypto::eth::{checksum, parse_address};
use dm3::ens::EnsName;
use dm3::profile::SignedUserProfile;
use sqlx::Row;

use super::{Pool, Store, StoreError, on_pool, write_on};
use crate::network_user::{Network, NetworkUserId, UnknownNetwork};

/// Who holds an identity's wallet: the node or the user, never both (docs/gateway.md section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Custody {
    /// The node holds the wallet, sealed; `key_version` is the current version, which signs.
    Custodial { key_version: u32 },
    /// The user holds the wallet and the node no key. `after_version` is the last version the
    /// node held (0: none), so a return to custody starts above it and no sealed key's label
    /// (`identity:<name>:v<version>`) is ever reused.
    SelfCustody { after_version: u32 },
}

impl Custody {
    /// The current key version, for a custodial identity.
    pub fn key_version(self) -> Option<u32> {
        match self {
            Self::Custodial { key_version } => Some(key_version),
            Self::SelfCustody { .. } => None,
        }
    }

    pub fn is_self_custody(self) -> bool {
        matches!(self, Self::SelfCustody { .. })
    }

    /// The `custody` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Custodial { .. } => "custodial",
            Self::SelfCustody { .. } => "self",
        }
    }

    /// The `key_version` column's value.
    fn version_column(self) -> i64 {
        match self {
            Self::Custodial { key_version } => i64::from(key_version),
            Self::SelfCustody { after_version } => i64::from(after_version),
        }
    }
}

/// An identity as stored: everything public about it, and who holds its wallet.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityRecord {
    pub name: EnsName,
    pub label: String,
    pub user: NetworkUserId,
    /// The name's `addr`: the node's wallet (custodial) or the user's (self-custody).
    pub address: Address,
    pub custody: Custody,
    /// The signed profile the name publishes, by the wallet at `address`.
    pub profile: SignedUserProfile,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Set while the identity is disabled.
    pub disabled_at_ms: Option<i64>,
}

/// One key version, sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey {
    pub version: u32,
    pub address: Address,
    pub sealed: Vec<u8>,
    pub created_at_ms: i64,
    /// Set when a rotation replaced this version.
    pub retired_at_ms: Option<i64>,
}

/// Someone an identity has envelopes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counterparty {
    pub name: String,
    pub envelopes: u64,
    pub last_received_at_ms: i64,
}

/// The columns of an identities row, before parsing.
type Raw = (String, String, String, String, String, i64, String, i64, i64, Option<i64>, String);

/// The columns of an identities row, as a literal so that `concat!` can build static SQL.
macro_rules! columns {
    () => {
        "name, label, network, network_user_id, address, key_version, profile, created_at, updated_at, disabled_at, \
         custody"
    };
}

macro_rules! raw_row {
    ($row:expr) => {
        (
            $row.try_get::<String, _>("name")?,
            $row.try_get::<String, _>("label")?,
            $row.try_get::<String, _>("network")?,
            $row.try_get::<String, _>("network_user_id")?,
            $row.try_get::<String, _>("address")?,
            $row.try_get::<i64, _>("key_version")?,
            $row.try_get::<String, _>("profile")?,
            $row.try_get::<i64, _>("created_at")?,
            $row.try_get::<i64, _>("updated_at")?,
            $row.try_get::<Option<i64>, _>("disabled_at")?,
            $row.try_get::<String, _>("custody")?,
        )
    };
}

macro_rules! raw_key {
    ($row:expr) => {
        (
            $row.try_get::<i64, _>("version")?,
            $row.try_get::<String, _>("address")?,
            $row.try_get::<Vec<u8>, _>("sealed")?,
            $row.try_get::<i64, _>("created_at")?,
            $row.try_get::<Option<i64>, _>("retired_at")?,
        )
    };
}

type RawKey = (i64, String, Vec<u8>, i64, Option<i64>);

/// Inserts one key version inside the transaction `$tx`.
macro_rules! insert_key {
    ($tx:expr, $name:expr, $key:expr) => {
        sqlx::query(
            "INSERT INTO identity_keys (name, version, address, sealed, created_at, retired_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($name.as_str())
        .bind(i64::from($key.version))
        .bind(checksum(&$key.address))
        .bind($key.sealed.as_slice())
        .bind($key.created_at_ms)
        .bind($key.retired_at_ms)
        .execute(&mut *$tx)
        .await?
    };
}

/// Makes `$key` the current key of identity `$name` with `$profile`, inside the transaction
/// `$tx`, where the row passes `$sql`'s guard (`$1` the name, `$2` the version it must have);
/// evaluates to whether it did. `$sql` sets `key_version = $3, address = $4, profile = $5,
/// updated_at = $6`; rotation and the return to custody differ only in their guard.
macro_rules! set_current_key {
    ($tx:expr, $sql:expr, $name:expr, $expected_version:expr, $key:expr, $profile:expr) => {
        sqlx::query($sql)
            .bind($name.as_str())
            .bind(i64::from($expected_version))
            .bind(i64::from($key.version))
            .bind(checksum(&$key.address))
            .bind($profile.as_str())
            .bind($key.created_at_ms)
            .execute(&mut *$tx)
            .await?
            .rows_affected()
            == 1
    };
}

/// Inserts an identity row inside the transaction `$tx`; evaluates to whether it was inserted
/// (`false`: the name or the network user is taken).
macro_rules! insert_row {
    ($tx:expr, $record:expr) => {
        sqlx::query(concat!(
            "INSERT INTO identities (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING"
        ))
        .bind($record.name.as_str())
        .bind(&$record.label)
        .bind($record.user.network().as_str())
        .bind($record.user.user_id())
        .bind(checksum(&$record.address))
        .bind($record.custody.version_column())
        .bind($record.profile.canonical())
        .bind($record.created_at_ms)
        .bind($record.updated_at_ms)
        .bind($record.disabled_at_ms)
        .bind($record.custody.as_str())
        .execute(&mut *$tx)
        .await?
        .rows_affected()
            == 1
    };
}

mod custody;

pub use custody::Switched;

impl Store {
    /// Stores a new identity and its first key. `false` when the name or the network user is
    /// already taken (nothing is written then).
    pub async fn insert_identity(
        &self,
        record: &IdentityRecord,
        key: &SealedKey,
    ) -> Result<bool, StoreError> {
        let (record, key) = (record.clone(), key.clone());
        write_on!(self, tx => {
            let inserted = insert_row!(tx, record);
            if inserted {
                insert_key!(tx, record.name, key);
            }
            Ok(inserted)
        })
    }

    /// The identity called `name`.
    pub async fn identity(&self, name: &EnsName) -> Result<Option<IdentityRecord>, StoreError> {
        const SQL: &str = concat!("SELECT ", columns!(), " FROM identities WHERE name = $1");
        let raw = on_pool!(self.pool(), p => {
            match sqlx::query(SQL).bind(name.as_str()).fetch_optional(p).await? {
                Some(row) => Some(raw_row!(row)),
                None => None,
            }
        });
        raw.map(parse).transpose()
    }

    /// The identity of a network user.
    pub async fn identity_of_user(&self, user: &NetworkUserId) -> Result<Option<IdentityRecord>, StoreError> {
        const SQL: &str =
            concat!("SELECT ", columns!(), " FROM identities WHERE network = $1 AND network_user_id = $2");
        let raw = on_pool!(self.pool(), p => {
            match sqlx::query(SQL)
                .bind(user.network().as_str())
                .bind(user.user_id())
                .fetch_optional(p)
                .await?
            {
                Some(row) => Some(raw_row!(row)),
                None => None,
            }
        });
        raw.map(parse).transpose()
    }

    /// Identities in name order, `limit` of them after skipping `offset`.
    pub async fn list_identities(&self, offset: u64, limit: u32) -> Result<Vec<IdentityRecord>, StoreError> {
        // Byte order on both backends: PostgreSQL's default collation may follow the locale.
        const SQLITE: &str =
            concat!("SELECT ", columns!(), " FROM identities ORDER BY name LIMIT $1 OFFSET $2");
        const POSTGRES: &str =
            concat!("SELECT ", columns!(), " FROM identities ORDER BY name COLLATE \"C\" LIMIT $1 OFFSET $2");
        let sql = match self.pool() {
            Pool::Sqlite(_) => SQLITE,
            Pool::Postgres(_) => POSTGRES,
        };
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let raws = on_pool!(self.pool(), p => {
            let rows = sqlx::query(sql).bind(i64::from(limit)).bind(offset).fetch_all(p).await?;
            let mut raws: Vec<Raw> = Vec::with_capacity(rows.len());
            for row in &rows {
                raws.push(raw_row!(row));
            }
            raws
        });
        raws.into_iter().map(parse).collect()
    }

    /// Up to `limit` identities whose name or network user id contains `term` (ASCII letters
    /// in any case), in name order. `term` is matched literally: `%`, `_` and `\\` are escaped.
    pub async fn search_identities(&self, term: &str, limit: u32) -> Result<Vec<IdentityRecord>, StoreError> {
        const SQLITE: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM identities WHERE LOWER(name) LIKE $1 ESCAPE '\\' OR LOWER(network_user_id) LIKE $1 ESCAPE '\\' \
             ORDER BY name LIMIT $2"
        );
        const POSTGRES: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM identities WHERE LOWER(name) LIKE $1 ESCAPE '\\' OR LOWER(network_user_id) LIKE $1 ESCAPE '\\' \
             ORDER BY name COLLATE \"C\" LIMIT $2"
        );
        let sql = match self.pool() {
            Pool::Sqlite(_) => SQLITE,
            Pool::Postgres(_) => POSTGRES,
        };
        let mut pattern = String::with_capacity(term.len() + 2);
        pattern.push('%');
        for c in term.to_ascii_lowercase().chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        let raws = on_pool!(self.pool(), p => {
            let rows = sqlx::query(sql).bind(pattern.as_str()).bind(i64::from(limit)).fetch_all(p).await?;
            let mut raws: Vec<Raw> = Vec::with_capacity(rows.len());
            for row in &rows {
                raws.push(raw_row!(row));
            }
            raws
        });
        raws.into_iter().map(parse).collect()
    }

    pub async fn count_identities(&self) -> Result<u64, StoreError> {
        let n = on_pool!(self.pool(), p => sqlx::query("SELECT COUNT(*) AS n FROM identities")
            .fetch_one(p)
            .await?
            .try_get::<i64, _>("n")?);
        Ok(n.unsigned_abs())
    }

    /// Disables (`Some(now)`) or enables (`None`) an identity; `false` if it does not exist.
    pub async fn set_identity_disabled(
        &self,
        name: &EnsName,
        disabled_at_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE identities SET disabled_at = $2, updated_at = $3 WHERE name = $1";
        let name = name.clone();
        let n = write_on!(self, one_statement, c => Ok(sqlx::query(SQL)
            .bind(name.as_str())
            .bind(disabled_at_ms)
            .bind(now_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        Ok(n == 1)
    }

    /// Deletes an identity and every key version of it; `false` if it did not exist.
    pub async fn delete_identity(&self, name: &EnsName) -> Result<bool, StoreError> {
        let name = name.clone();
        write_on!(self, tx => {
            sqlx::query("DELETE FROM identity_keys WHERE name = $1").bind(name.as_str()).execute(&mut *tx).await?;
            // Its blocks go with it: a name made again later starts with none (migration 0011).
            sqlx::query("DELETE FROM blocked_senders WHERE identity = $1")
                .bind(name.as_str())
                .execute(&mut *tx)
                .await?;
            let n = sqlx::query("DELETE FROM identities WHERE name = $1")
                .bind(name.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            Ok(n == 1)
        })
    }

    /// Makes `key` the current version of `name`, if the identity is still at `from_version`;
    /// the old version is marked retired. `false` if it was not (a concurrent rotation, or
    /// the identity is gone); nothing is written then.
    pub async fn rotate_identity(
        &self,
        name: &EnsName,
        from_version: u32,
        key: &SealedKey,
        profile: &SignedUserProfile,
    ) -> Result<bool, StoreError> {
        const UPDATE: &str = "UPDATE identities SET key_version = $3, address = $4, profile = $5, updated_at = $6 \
             WHERE name = $1 AND key_version = $2 AND custody = 'custodial'";
        const RETIRE: &str = "UPDATE identity_keys SET retired_at = $3 WHERE name = $1 AND version = $2";
        let (name, key, profile) = (name.clone(), key.clone(), profile.canonical());
        write_on!(self, tx => {
            let updated = set_current_key!(tx, UPDATE, name, from_version, key, profile);
            if updated {
                sqlx::query(RETIRE)
                    .bind(name.as_str())
                    .bind(i64::from(from_version))
                    .bind(key.created_at_ms)
                    .execute(&mut *tx)
                    .await?;
                insert_key!(tx, name, key);
            }
            Ok(updated)
        })
    }

    /// Every key version of `name`, newest first.
    pub async fn identity_keys(&self, name: &EnsName) -> Result<Vec<SealedKey>, StoreError> {
        const SQL: &str = "SELECT version, address, sealed, created_at, retired_at FROM identity_keys \
             WHERE name = $1 ORDER BY version DESC";
        let raws = on_pool!(self.pool(), p => {
            let rows = sqlx::query(SQL).bind(name.as_str()).fetch_all(p).await?;
            let mut raws = Vec::with_capacity(rows.len());
            for row in &rows {
                raws.push(raw_key!(row));
            }
            raws
        });
        raws.into_iter().map(|raw| parse_key(name.as_str(), raw)).collect()
    }

    /// The most recently created sealed key of any identity, to check the master key at start-up.
    pub async fn newest_identity_key(&self) -> Result<Option<(EnsName, SealedKey)>, StoreError> {
        const SQL: &str = "SELECT name, version, address, sealed, created_at, retired_at FROM identity_keys \
             ORDER BY created_at DESC, name LIMIT 1";
        let raw = on_pool!(self.pool(), p => {
            match sqlx::query(SQL).fetch_optional(p).await? {
                Some(row) => Some((row.try_get::<String, _>("name")?, raw_key!(row))),
                None => None,
            }
        });
        raw.map(|(name, raw)| {
            let key = parse_key(&name, raw)?;
            let name = EnsName::from_normalized(&name).map_err(|e| corrupt(&name, e))?;
            Ok((name, key))
        })
        .transpose()
    }

    /// Who sent envelopes to `name` that the store still holds: one entry per sender, the most
    /// recent conversation first, at most `limit`.
    pub async fn identity_counterparties(
        &self,
        name: &EnsName,
        limit: u32,
    ) -> Result<Vec<Counterparty>, StoreError> {
        const SQL: &str = "SELECT sender, COUNT(*) AS n, MAX(received_at) AS last_at FROM envelopes \
             WHERE receiver = $1 GROUP BY sender ORDER BY last_at DESC, sender LIMIT $2";
        let rows = on_pool!(self.pool(), p => {
            let rows = sqlx::query(SQL).bind(name.as_str()).bind(i64::from(limit)).fetch_all(p).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push((
                    row.try_get::<String, _>("sender")?,
                    row.try_get::<i64, _>("n")?,
                    row.try_get::<i64, _>("last_at")?,
                ));
            }
            out
        });
        Ok(rows
            .into_iter()
            .map(|(name, n, last)| Counterparty {
                name,
                envelopes: n.unsigned_abs(),
                last_received_at_ms: last,
            })
            .collect())
    }
}

fn parse(raw: Raw) -> Result<IdentityRecord, StoreError> {
    let (name, label, network, user_id, address, version, profile, created, updated, disabled, custody) = raw;
    let fail = |reason: String| StoreError::CorruptIdentity { name: name.clone(), reason };
    let parsed_name = EnsName::from_normalized(&name).map_err(|e| fail(e.to_string()))?;
    let network: Network = network.parse().map_err(|e: UnknownNetwork| fail(e.to_string()))?;
    let user = NetworkUserId::parse(network, &user_id).map_err(|e| fail(e.to_string()))?;
    let address = parse_address(&address).map_err(|e| fail(format!("address: {e}")))?;
    let version = u32::try_from(version).map_err(|_| fail(format!("key version {version}")))?;
    let custody = match custody.as_str() {
        "custodial" => Custody::Custodial { key_version: version },
        "self" => Custody::SelfCustody { after_version: version },
        other => return Err(fail(format!("custody {other:?}"))),
    };
    let profile = SignedUserProfile::parse(&profile).map_err(|e| fail(format!("profile: {e}")))?;
    Ok(IdentityRecord {
        name: parsed_name,
        label,
        user,
        address,
        custody,
        profile,
        created_at_ms: created,
        updated_at_ms: updated,
        disabled_at_ms: disabled,
    })
}

fn parse_key(name: &str, raw: RawKey) -> Result<SealedKey, StoreError> {
    let (version, address, sealed, created_at_ms, retired_at_ms) = raw;
    let version = u32::try_from(version).map_err(|_| corrupt(name, format!("key version {version}")))?;
    let address = parse_address(&address).map_err(|e| corrupt(name, format!("key address: {e}")))?;
    Ok(SealedKey { version, address, sealed, created_at_ms, retired_at_ms })
}

fn corrupt(name: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::CorruptIdentity { name: name.to_owned(), reason: reason.to_string() }
}
