//! Login challenges: issued by `GET /auth/:name`, redeemable once by `POST /auth/:name`.
//!
//! The reference DS puts the challenge in a stateless JWT, so a signed challenge can be
//! replayed until it expires (docs/protocol.md §9.2). We keep each challenge in the database and
//! mark it used in the same statement that checks it, so a replay — even two concurrent ones —
//! finds it used: exactly one `consume` of a challenge ever succeeds.
//!
//! Asking for a challenge needs no credential, so each issue is a write an outsider can cause.
//! What bounds it: only names with an account get challenges (the delivery service checks),
//! each name keeps at most [`MAX_LIVE_CHALLENGES`] unused ones (issuing another forgets the
//! oldest, in the same commit), and the routes rate-limit clients. The table therefore never
//! holds more than `MAX_LIVE_CHALLENGES` rows per account plus the used ones awaiting expiry.

use std::fmt;

use dm3::ens::EnsName;

use super::{Store, StoreError, write_on};

/// Most unused, unexpired challenges one name has at a time. A client needs one; a few cover
/// several devices logging in at once.
pub const MAX_LIVE_CHALLENGES: i64 = 8;

/// A random challenge id (128 bits, hex), unguessable and unique.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChallengeId(String);

impl ChallengeId {
    fn random() -> Result<Self, StoreError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|_| StoreError::Random)?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// Takes an id back from a client; anything malformed simply never matches.
    pub fn from_client(id: &str) -> Option<Self> {
        (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
            .then(|| Self(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChallengeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An issued challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub id: ChallengeId,
    pub name: EnsName,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

impl Store {
    /// Issues a new challenge for `name`, valid for `ttl_ms`, and forgets the name's oldest
    /// unused ones beyond [`MAX_LIVE_CHALLENGES`] in the same commit.
    pub async fn create_challenge(
        &self,
        name: &EnsName,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Challenge, StoreError> {
        const SQL: &str = "INSERT INTO challenges (id, name, created_at, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, NULL)";
        // The name's live challenges past the newest MAX_LIVE_CHALLENGES (the new one
        // included); ids break ties of one millisecond.
        const FORGET: &str = "DELETE FROM challenges WHERE id IN (\
             SELECT id FROM challenges WHERE name = $1 AND used_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET $3)";
        const FORGET_PG: &str = "DELETE FROM challenges WHERE id IN (\
             SELECT id FROM challenges WHERE name = $1 AND used_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC, id DESC OFFSET $3)";
        let challenge = Challenge {
            id: ChallengeId::random()?,
            name: name.clone(),
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(ttl_ms),
        };
        let stored = challenge.clone();
        let forget = match self.pool() {
            super::Pool::Sqlite(_) => FORGET,
            super::Pool::Postgres(_) => FORGET_PG,
        };
        write_on!(self, c => {
            sqlx::query(SQL)
                .bind(stored.id.as_str())
                .bind(stored.name.as_str())
                .bind(stored.created_at_ms)
                .bind(stored.expires_at_ms)
                .execute(&mut *c)
                .await?;
            sqlx::query(forget)
                .bind(stored.name.as_str())
                .bind(now_ms)
                .bind(MAX_LIVE_CHALLENGES)
                .execute(&mut *c)
                .await?;
            Ok(())
        })?;
        Ok(challenge)
    }

    /// Redeems a challenge: `true` exactly once, if it was issued for `name`, is unused and
    /// has not expired; `false` otherwise (unknown, other name, used, expired).
    pub async fn consume_challenge(
        &self,
        id: &ChallengeId,
        name: &EnsName,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE challenges SET used_at = $3 \
             WHERE id = $1 AND name = $2 AND used_at IS NULL AND expires_at > $3";
        let (id, name) = (id.clone(), name.clone());
        let changed = write_on!(self, one_statement, c => Ok(sqlx::query(SQL)
            .bind(id.as_str())
            .bind(name.as_str())
            .bind(now_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        Ok(changed == 1)
    }

    /// Forgets challenges that expired by `now_ms`; returns how many.
    pub async fn delete_expired_challenges(&self, now_ms: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM challenges WHERE expires_at <= $1";
        let deleted = write_on!(self, one_statement, c => Ok(sqlx::query(SQL)
            .bind(now_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        Ok(deleted)
    }

    /// The challenge with this id, used or not (for diagnostics and tests).
    pub async fn get_challenge(&self, id: &ChallengeId) -> Result<Option<Challenge>, StoreError> {
        const SQL: &str = "SELECT name, created_at, expires_at FROM challenges WHERE id = $1";
        let found = self.get_name_lifetime(SQL, id.as_str()).await?;
        Ok(found.map(|row| Challenge {
            id: id.clone(),
            name: row.name,
            created_at_ms: row.created_at_ms,
            expires_at_ms: row.expires_at_ms,
        }))
    }
}
