//! The Telegram connector's per-chat state: current contact, recent contacts, message routes,
//! the reaction events standing for users' reactions, and the newest update of each chat whose
//! state changes were made (migration 0010: the guard against an old update served again, which
//! must outlive a restart).
//!
//! The bot chat multiplexes DM3 contacts (docs/telegram.md), so the connector needs to remember
//! between updates whom each chat writes to, whom it wrote to lately (`/contacts`), and which
//! conversation each relayed message belongs to (a Telegram reply answers that conversation).
//! The connector owns no database; [`crate::bridges::telegram`] implements its `ChatState`
//! over these methods.
//!
//! Everything is keyed by the connector's network id as well, like portals and the message
//! map: a Telegram user's private chat has the same id with every bot.
//!
//! Every write is idempotent, because Telegram serves an update again until the connector
//! confirmed it: setting the same contact again only refreshes its time, recording the same
//! route again keeps the first record, recording a reaction again records the same event.

use dm3_bridge_connector::{ConversationId, IdError, NetworkId, NetworkMessageId, RemoteIdentity};
use sqlx::Row;

use super::{Inserted, Store, StoreError, on_pool, write_on};

/// The most contacts remembered per chat; older ones are forgotten when a new one is chosen.
pub const MAX_RECENT_CONTACTS: u32 = 50;

fn corrupt(what: &'static str) -> impl Fn(IdError) -> StoreError {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

impl Store {
    /// Whom `chat_id` writes to now, on the Telegram connector `network`.
    pub async fn telegram_current_contact(
        &self,
        network: &NetworkId,
        chat_id: i64,
    ) -> Result<Option<RemoteIdentity>, StoreError> {
        const SQL: &str = "SELECT current_contact FROM telegram_chats WHERE network = $1 AND chat_id = $2";
        let contact: Option<String> = on_pool!(self.pool(), p => sqlx::query(SQL)
            .bind(network.as_str())
            .bind(chat_id)
            .fetch_optional(p)
            .await?
            .map(|row| row.try_get("current_contact"))
            .transpose()?);
        contact.map(|c| RemoteIdentity::new(c).map_err(corrupt("a chat's current contact"))).transpose()
    }

    /// Makes `contact` the current contact of `chat_id` and the most recent of its contacts, in
    /// one transaction, and forgets the contacts beyond the [`MAX_RECENT_CONTACTS`] most recent.
    ///
    /// The contact's `last_used_at` is `now_ms`, or one past the chat's newest if the clock has
    /// not moved past it (two choices in one millisecond, a clock set back): the contact just
    /// chosen is always the most recent.
    pub async fn set_telegram_contact(
        &self,
        network: &NetworkId,
        chat_id: i64,
        contact: &RemoteIdentity,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const SET_CURRENT: &str = "INSERT INTO telegram_chats (network, chat_id, current_contact, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (network, chat_id) \
             DO UPDATE SET current_contact = excluded.current_contact, updated_at = excluded.updated_at";
        const NEWEST_USE: &str =
            "SELECT MAX(last_used_at) AS newest FROM telegram_contacts WHERE network = $1 AND chat_id = $2";
        const TOUCH_CONTACT: &str = "INSERT INTO telegram_contacts (network, chat_id, contact, last_used_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (network, chat_id, contact) \
             DO UPDATE SET last_used_at = excluded.last_used_at";
        const FORGET_OLD: &str = "DELETE FROM telegram_contacts WHERE network = $1 AND chat_id = $2 \
             AND contact NOT IN (SELECT contact FROM telegram_contacts WHERE network = $1 AND chat_id = $2 \
             ORDER BY last_used_at DESC LIMIT $3)";
        let (network, contact) = (network.clone(), contact.clone());
        write_on!(self, c => {
            sqlx::query(SET_CURRENT)
                .bind(network.as_str())
                .bind(chat_id)
                .bind(contact.as_str())
                .bind(now_ms)
                .execute(&mut *c)
                .await?;
            let newest: Option<i64> = sqlx::query(NEWEST_USE)
                .bind(network.as_str())
                .bind(chat_id)
                .fetch_one(&mut *c)
                .await?
                .try_get("newest")?;
            let used_at = match newest {
                Some(newest) if newest >= now_ms => newest.saturating_add(1),
                _ => now_ms,
            };
            sqlx::query(TOUCH_CONTACT)
                .bind(network.as_str())
                .bind(chat_id)
                .bind(contact.as_str())
                .bind(used_at)
                .execute(&mut *c)
                .await?;
            sqlx::query(FORGET_OLD)
                .bind(network.as_str())
                .bind(chat_id)
                .bind(i64::from(MAX_RECENT_CONTACTS))
                .execute(&mut *c)
                .await?;
            Ok(())
        })?;
        Ok(())
    }

    /// The contacts of `chat_id`, most recently chosen first, at most `limit` (and at most
    /// [`MAX_RECENT_CONTACTS`]).
    pub async fn telegram_recent_contacts(
        &self,
        network: &NetworkId,
        chat_id: i64,
        limit: u32,
    ) -> Result<Vec<RemoteIdentity>, StoreError> {
        const SQL: &str = "SELECT contact FROM telegram_contacts WHERE network = $1 AND chat_id = $2 \
             ORDER BY last_used_at DESC, contact LIMIT $3";
        let limit = i64::from(limit.min(MAX_RECENT_CONTACTS));
        let contacts: Vec<String> = on_pool!(self.pool(), p => sqlx::query(SQL)
            .bind(network.as_str())
            .bind(chat_id)
            .bind(limit)
            .fetch_all(p)
            .await?
            .iter()
            .map(|row| row.try_get("contact"))
            .collect::<Result<_, sqlx::Error>>()?);
        contacts.into_iter().map(|c| RemoteIdentity::new(c).map_err(corrupt("a chat's contact"))).collect()
    }

    /// Remembers that the relayed `message` belongs to `conversation`.
    /// [`Inserted::Duplicate`] if it was recorded before (the first record stays).
    pub async fn record_telegram_route(
        &self,
        network: &NetworkId,
        message: &NetworkMessageId,
        conversation: &ConversationId,
        now_ms: i64,
    ) -> Result<Inserted, StoreError> {
        const SQL: &str = "INSERT INTO telegram_routes (network, network_message_id, conversation, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
        let (network, message, conversation) = (network.clone(), message.clone(), conversation.clone());
        let inserted = write_on!(self, one_statement, c => Ok(sqlx::query(SQL)
            .bind(network.as_str())
            .bind(message.as_str())
            .bind(conversation.as_str())
            .bind(now_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        Ok(if inserted == 1 { Inserted::New } else { Inserted::Duplicate })
    }

    /// The conversation the relayed `message` belongs to.
    pub async fn telegram_route(
        &self,
        network: &NetworkId,
        message: &NetworkMessageId,
    ) -> Result<Option<ConversationId>, StoreError> {
        const SQL: &str =
            "SELECT conversation FROM telegram_routes WHERE network = $1 AND network_message_id = $2";
        let conversation: Option<String> = on_pool!(self.pool(), p => sqlx::query(SQL)
            .bind(network.as_str())
            .bind(message.as_str())
            .fetch_optional(p)
            .await?
            .map(|row| row.try_get("conversation"))
            .transpose()?);
        conversation.map(|c| ConversationId::new(c).map_err(corrupt("a message route"))).transpose()
    }

    /// Remembers that the reaction event `reaction` stands for `slot` (one user's emoji on one
    /// message) now, replacing the event recorded before: the same emoji added again after
    /// being taken back is a new event, and taking it back again must name the new one.
    pub async fn record_telegram_reaction(
        &self,
        network: &NetworkId,
        slot: &NetworkMessageId,
        reaction: &NetworkMessageId,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO telegram_reactions (network, slot, reaction, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (network, slot) \
             DO UPDATE SET reaction = excluded.reaction, created_at = excluded.created_at";
        let (network, slot, reaction) = (network.clone(), slot.clone(), reaction.clone());
        write_on!(self, one_statement, c => {
            sqlx::query(SQL)
                .bind(network.as_str())
                .bind(slot.as_str())
                .bind(reaction.as_str())
                .bind(now_ms)
                .execute(&mut *c)
                .await?;
            Ok(())
        })?;
        Ok(())
    }

    /// The reaction event last recorded for `slot`.
    pub async fn telegram_reaction(
        &self,
        network: &NetworkId,
        slot: &NetworkMessageId,
    ) -> Result<Option<NetworkMessageId>, StoreError> {
        const SQL: &str = "SELECT reaction FROM telegram_reactions WHERE network = $1 AND slot = $2";
        let reaction: Option<String> = on_pool!(self.pool(), p => sqlx::query(SQL)
            .bind(network.as_str())
            .bind(slot.as_str())
            .fetch_optional(p)
            .await?
            .map(|row| row.try_get("reaction"))
            .transpose()?);
        reaction.map(|r| NetworkMessageId::new(r).map_err(corrupt("a reaction event"))).transpose()
    }

    /// The newest update of `chat_id` whose state changes were made, and when (ms): what
    /// [`Store::record_telegram_applied_update`] recorded last.
    pub async fn telegram_applied_update(
        &self,
        network: &NetworkId,
        chat_id: i64,
    ) -> Result<Option<(u32, i64)>, StoreError> {
        const SQL: &str = "SELECT update_id, applied_at FROM telegram_applied_updates \
             WHERE network = $1 AND chat_id = $2";
        let row: Option<(i64, i64)> = on_pool!(self.pool(), p => sqlx::query(SQL)
            .bind(network.as_str())
            .bind(chat_id)
            .fetch_optional(p)
            .await?
            .map(|row| Ok::<_, sqlx::Error>((row.try_get("update_id")?, row.try_get("applied_at")?)))
            .transpose()?);
        row.map(|(update_id, at)| {
            let update_id = u32::try_from(update_id).map_err(|_| {
                StoreError::Corrupt(format!("a Telegram update id out of range: {update_id}"))
            })?;
            Ok((update_id, at))
        })
        .transpose()
    }

    /// Records that the state changes of update `update_id` of `chat_id` were made at `now_ms`,
    /// replacing the record before: the connector handles a chat's updates one at a time and
    /// records only the newest (or one after the record went stale), so the last write wins.
    pub async fn record_telegram_applied_update(
        &self,
        network: &NetworkId,
        chat_id: i64,
        update_id: u32,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO telegram_applied_updates (network, chat_id, update_id, applied_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (network, chat_id) \
             DO UPDATE SET update_id = excluded.update_id, applied_at = excluded.applied_at";
        let network = network.clone();
        write_on!(self, one_statement, c => {
            sqlx::query(SQL)
                .bind(network.as_str())
                .bind(chat_id)
                .bind(i64::from(update_id))
                .bind(now_ms)
                .execute(&mut *c)
                .await?;
            Ok(())
        })?;
        Ok(())
    }

    /// Forgets the routes, reaction events and applied-update records written before
    /// `before_ms`, on every network; returns how many. A reply to an older message then no longer finds its conversation (the
    /// connector tells the user to choose a contact), and a reaction to it is not relayed, so
    /// only routes nobody will reply to should go.
    pub async fn prune_telegram_routes(&self, before_ms: i64) -> Result<u64, StoreError> {
        const ROUTES: &str = "DELETE FROM telegram_routes WHERE created_at < $1";
        const REACTIONS: &str = "DELETE FROM telegram_reactions WHERE created_at < $1";
        const APPLIED: &str = "DELETE FROM telegram_applied_updates WHERE applied_at < $1";
        let deleted = write_on!(self, c => {
            let mut deleted = 0;
            for sql in [ROUTES, REACTIONS, APPLIED] {
                deleted += sqlx::query(sql).bind(before_ms).execute(&mut *c).await?.rows_affected();
            }
            Ok(deleted)
        })?;
        Ok(deleted)
    }
}
