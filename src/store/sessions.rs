//! Login sessions: which account a session token belongs to, and until when.
//!
//! The reference DS issues stateless JWTs signed with a secret derived from its signing key
//! (docs/protocol.md §3.2, §9.2). We issue opaque random tokens instead and keep a row per token,
//! so a token can be checked, expired and (later) revoked without any signing secret. The
//! row holds only the token's SHA-256 ([`TokenHash`]): whoever reads the database (a backup, a
//! replica, an operator) learns no token that works. The token itself never reaches the store.

use std::fmt;

use dm3::ens::EnsName;

use super::{Store, StoreError, write_on};

/// The SHA-256 of a session token: the key of its row.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, the stored form.
    fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Not the token, but still a handle on a live session: shown shortened only.
impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

/// A live or expired session, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token_hash: TokenHash,
    pub name: EnsName,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

impl Store {
    /// Records a session for `name`, valid until `expires_at_ms`.
    pub async fn create_session(
        &self,
        token_hash: &TokenHash,
        name: &EnsName,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str =
            "INSERT INTO sessions (token_hash, name, created_at, expires_at) VALUES ($1, $2, $3, $4)";
        let (token_hash, name) = (token_hash.to_hex(), name.clone());
        write_on!(self, one_statement, c => {
            sqlx::query(SQL)
                .bind(token_hash.as_str())
                .bind(name.as_str())
                .bind(now_ms)
                .bind(expires_at_ms)
                .execute(&mut *c)
                .await?;
            Ok(())
        })?;
        Ok(())
    }

    /// The session whose token hashes to `token_hash`, expired or not; the caller decides.
    pub async fn get_session(&self, token_hash: &TokenHash) -> Result<Option<Session>, StoreError> {
        const SQL: &str = "SELECT name, created_at, expires_at FROM sessions WHERE token_hash = $1";
        let found = self.get_name_lifetime(SQL, &token_hash.to_hex()).await?;
        Ok(found.map(|row| Session {
            token_hash: token_hash.clone(),
            name: row.name,
            created_at_ms: row.created_at_ms,
            expires_at_ms: row.expires_at_ms,
        }))
    }

    /// Forgets sessions that expired by `now_ms`; returns how many.
    pub async fn delete_expired_sessions(&self, now_ms: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM sessions WHERE expires_at <= $1";
        let deleted = write_on!(self, one_statement, c => Ok(sqlx::query(SQL)
            .bind(now_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        Ok(deleted)
    }
}
