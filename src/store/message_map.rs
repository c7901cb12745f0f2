//! The message map: which network message a DM3 message became, and the other way round.
//!
//! Replies, edits, reactions and deletes name their target: a DM3 message by
//! `referenceMessageHash`, a network event by the network's message id. To carry them across,
//! the engine records every bridged message once it is delivered (in either direction) and
//! translates the reference through this table. Each side is unique per network, so a
//! translation has one answer. The conversation is kept with the mapping because some
//! networks need it to address a message (a Matrix redaction names the room).
//!
//! Recording is idempotent: a handler that runs again after a crash records the same pair
//! again, which is a [`Inserted::Duplicate`], not an error.

use dm3::message::MessageHash;
use dm3_bridge_connector::{ConversationId, NetworkId, NetworkMessageId};
use sqlx::Row;

use super::{Inserted, Store, StoreError, ids, on_pool, write_on};

/// A delivered message to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMapping {
    pub network: NetworkId,
    pub dm3_hash: MessageHash,
    pub network_message_id: NetworkMessageId,
    pub conversation: ConversationId,
}

/// A recorded mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedMessage {
    pub network: NetworkId,
    pub dm3_hash: MessageHash,
    pub network_message_id: NetworkMessageId,
    pub conversation: ConversationId,
    pub created_at_ms: i64,
}

struct RawMapping {
    network: String,
    dm3_hash: String,
    network_message_id: String,
    conversation: String,
    created_at: i64,
}

macro_rules! read_mapping {
    ($row:expr) => {
        RawMapping {
            network: $row.try_get("network")?,
            dm3_hash: $row.try_get("dm3_hash")?,
            network_message_id: $row.try_get("network_message_id")?,
            conversation: $row.try_get("conversation")?,
            created_at: $row.try_get("created_at")?,
        }
    };
}

impl RawMapping {
    fn into_mapping(self) -> Result<MappedMessage, StoreError> {
        let corrupt = |e: dm3_bridge_connector::IdError| {
            StoreError::Corrupt(format!("message map entry for {}: {e}", self.dm3_hash))
        };
        Ok(MappedMessage {
            network: NetworkId::new(self.network.as_str()).map_err(corrupt)?,
            network_message_id: NetworkMessageId::new(self.network_message_id.as_str()).map_err(corrupt)?,
            conversation: ConversationId::new(self.conversation.as_str()).map_err(corrupt)?,
            dm3_hash: ids::stored_hash(&self.dm3_hash)?,
            created_at_ms: self.created_at,
        })
    }
}

/// Inserts `$mapping` (a `NewMapping`) at `$now_ms` on `$c` inside a write; evaluates to the
/// rows inserted (0: either side was mapped already). Shared by [`Store::record_message`] and
/// the job completion that records its message in the same commit.
macro_rules! insert_mapping {
    ($c:expr, $mapping:expr, $now_ms:expr) => {
        sqlx::query(
            "INSERT INTO message_map (network, dm3_hash, network_message_id, conversation, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind($mapping.network.as_str())
        .bind($mapping.dm3_hash.to_string())
        .bind($mapping.network_message_id.as_str())
        .bind($mapping.conversation.as_str())
        .bind($now_ms)
        .execute(&mut *$c)
        .await?
        .rows_affected()
    };
}
pub(super) use insert_mapping;

impl Store {
    /// Records that `mapping.dm3_hash` and `mapping.network_message_id` are one message.
    /// [`Inserted::Duplicate`] if either side was mapped already (the first mapping stays).
    pub async fn record_message(&self, mapping: &NewMapping, now_ms: i64) -> Result<Inserted, StoreError> {
        let mapping = mapping.clone();
        let inserted = write_on!(self, one_statement, c => Ok(insert_mapping!(c, mapping, now_ms)))?;
        Ok(if inserted == 1 { Inserted::New } else { Inserted::Duplicate })
    }

    /// The network message a DM3 message became (or came from) on `network`.
    pub async fn message_by_dm3_hash(
        &self,
        network: &NetworkId,
        dm3_hash: &MessageHash,
    ) -> Result<Option<MappedMessage>, StoreError> {
        const SQL: &str = "SELECT network, dm3_hash, network_message_id, conversation, created_at \
             FROM message_map WHERE network = $1 AND dm3_hash = $2";
        let raw = on_pool!(self.pool(), p => {
            let query = sqlx::query(SQL).bind(network.as_str()).bind(dm3_hash.to_string());
            match query.fetch_optional(p).await? {
                None => None,
                Some(row) => Some(read_mapping!(row)),
            }
        });
        raw.map(RawMapping::into_mapping).transpose()
    }

    /// The DM3 message a network message became (or came from).
    pub async fn message_by_network_id(
        &self,
        network: &NetworkId,
        network_message_id: &NetworkMessageId,
    ) -> Result<Option<MappedMessage>, StoreError> {
        const SQL: &str = "SELECT network, dm3_hash, network_message_id, conversation, created_at \
             FROM message_map WHERE network = $1 AND network_message_id = $2";
        let raw = on_pool!(self.pool(), p => {
            match sqlx::query(SQL)
                .bind(network.as_str())
                .bind(network_message_id.as_str())
                .fetch_optional(p)
                .await?
            {
                None => None,
                Some(row) => Some(read_mapping!(row)),
            }
        });
        raw.map(RawMapping::into_mapping).transpose()
    }
}
