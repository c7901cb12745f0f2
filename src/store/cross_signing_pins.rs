//! Matrix users' pinned master keys (migration 0025): what `[matrix] sender_trust =
//! "cross-signed"` compares a sender's published master key with, so that a homeserver that
//! later publishes another one in their name cannot vouch for a device of its own
//! (`dm3_bridge_matrix::crypto::identity_pins`).
//!
//! A pin is written once, on first sight, by one statement that cannot overwrite (two replicas
//! pinning at once agree on whichever wrote first), and only an admin removes it
//! ([`Store::drop_cross_signing_pin`]): the user's next message pins what they publish then.

use sqlx::Row as _;

use super::{Store, StoreError, on_pool, write_on};

/// A pinned master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossSigningPin {
    pub user_id: String,
    /// Unpadded base64.
    pub master_key: String,
    pub pinned_at_ms: i64,
}

impl Store {
    /// Pins `master_key` as `user_id`'s unless a key is pinned already: the key pinned now.
    pub async fn pin_cross_signing(
        &self,
        user_id: &str,
        master_key: &str,
        now_ms: i64,
    ) -> Result<String, StoreError> {
        const PIN: &str = "INSERT INTO matrix_cross_signing_pins (user_id, master_key, pinned_at) \
             VALUES ($1, $2, $3) ON CONFLICT (user_id) DO NOTHING";
        const READ: &str = "SELECT master_key FROM matrix_cross_signing_pins WHERE user_id = $1";
        let (user_id, master_key) = (user_id.to_owned(), master_key.to_owned());
        write_on!(self, c => {
            sqlx::query(PIN).bind(user_id.as_str()).bind(master_key.as_str()).bind(now_ms).execute(&mut *c).await?;
            let pinned: String = sqlx::query_scalar(READ).bind(user_id.as_str()).fetch_one(&mut *c).await?;
            Ok(pinned)
        })
    }

    /// `user_id`'s pin, if one is kept.
    pub async fn cross_signing_pin(&self, user_id: &str) -> Result<Option<CrossSigningPin>, StoreError> {
        const SQL: &str = "SELECT master_key, pinned_at FROM matrix_cross_signing_pins WHERE user_id = $1";
        let row = on_pool!(self.pool(), p => {
            let row = sqlx::query(SQL).bind(user_id).fetch_optional(p).await?;
            row.map(|row| Ok::<_, sqlx::Error>((row.try_get::<String, _>("master_key")?, row.try_get::<i64, _>("pinned_at")?)))
                .transpose()?
        });
        Ok(row.map(|(master_key, pinned_at_ms)| CrossSigningPin {
            user_id: user_id.to_owned(),
            master_key,
            pinned_at_ms,
        }))
    }

    /// Drops `user_id`'s pin (an admin accepted their new identity): the pin that was dropped,
    /// `None` if there was none.
    pub async fn drop_cross_signing_pin(&self, user_id: &str) -> Result<Option<CrossSigningPin>, StoreError> {
        const SQL: &str =
            "DELETE FROM matrix_cross_signing_pins WHERE user_id = $1 RETURNING master_key, pinned_at";
        let user_id = user_id.to_owned();
        write_on!(self, c => {
            let row = sqlx::query(SQL).bind(user_id.as_str()).fetch_optional(&mut *c).await?;
            match row {
                Some(row) => Ok(Some(CrossSigningPin {
                    user_id: user_id.clone(),
                    master_key: row.try_get("master_key")?,
                    pinned_at_ms: row.try_get("pinned_at")?,
                })),
                None => Ok(None),
            }
        })
    }
}
