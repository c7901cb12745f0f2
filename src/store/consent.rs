//! What a portal awaiting its network user's consent holds (docs/engine.md, "First contact").
//!
//! A DM3 user who writes first to a Matrix user opens a DM that invites them; until they join,
//! the messages wait in the room's history for them, and at most `[engine]
//! max_held_until_consent` of them may: an invite is no consent to a flood. While consent is
//! awaited, every message the portal carried came from its DM3 user (the network user has not
//! joined, so wrote nothing), so the held messages are the portal conversation's rows of the
//! message map, counted up to the cap and no further (an indexed range scan of at most that
//! many rows: migration 0012's index).

use dm3::message::MessageHash;
use dm3_bridge_connector::{ConversationId, NetworkId};
use sqlx::Row;

use super::{Store, StoreError, on_pool, write_on};

impl Store {
    /// How many messages `conversation` on `network` carried, counted up to `at_most`.
    pub async fn held_messages(
        &self,
        network: &NetworkId,
        conversation: &ConversationId,
        at_most: u32,
    ) -> Result<u32, StoreError> {
        const SQL: &str = "SELECT COUNT(*) AS n FROM (SELECT 1 FROM message_map \
             WHERE network = $1 AND conversation = $2 LIMIT $3) AS held";
        let count: i64 = on_pool!(self.pool(), p => sqlx::query(SQL)
            .bind(network.as_str())
            .bind(conversation.as_str())
            .bind(i64::from(at_most))
            .fetch_one(p)
            .await?
            .try_get("n")?);
        Ok(u32::try_from(count).unwrap_or(at_most))
    }

    /// The first DM3 message `conversation` carried: what a report about the whole first
    /// contact (a declined invite) answers.
    pub async fn first_held_message(
        &self,
        network: &NetworkId,
        conversation: &ConversationId,
    ) -> Result<Option<MessageHash>, StoreError> {
        const SQL: &str = "SELECT dm3_hash FROM message_map WHERE network = $1 AND conversation = $2 \
             ORDER BY id LIMIT 1";
        let hash: Option<String> = on_pool!(self.pool(), p => match sqlx::query(SQL)
            .bind(network.as_str())
            .bind(conversation.as_str())
            .fetch_optional(p)
            .await?
        {
            None => None,
            Some(row) => Some(row.try_get::<String, _>("dm3_hash")?),
        });
        hash.map(|text| {
            text.parse().map_err(|e| StoreError::Corrupt(format!("message map hash {text}: {e}")))
        })
        .transpose()
    }

    /// Portal `id`'s network user accepted it (joined the DM); false if there is no such portal.
    pub async fn set_portal_consent_given(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE portals SET awaiting_consent_since = NULL, updated_at = $2 WHERE id = $1";
        let changed = write_on!(self, one_statement, c => Ok(sqlx::query(SQL)
            .bind(id)
            .bind(now_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        self.recent_portals().forget_all();
        Ok(changed == 1)
    }
}
