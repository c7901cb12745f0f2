//! The message map as the converters see it: DM3 message hash ↔ network message id.
//!
//! DM3 names the target of a reply, edit, reaction, delete or receipt by its message hash
//! (`referenceMessageHash`, docs/protocol.md §5.2); a network names it by its own id. The engine
//! records both halves of every message it carries (`message_map`, one network per map), and
//! the converters look targets up through this trait, so they stay free of the database. The
//! lead implements it over the store, bound to one network.
//!
//! A mapping carries the conversation it belongs to. The converters use a target only inside
//! the conversation being converted: a DM3 user must not be able to edit, delete or react to a
//! message of *another* portal by naming its hash (hashes are not secret: every party of that
//! other conversation knows them). A mapping of another conversation counts as unmapped.

use ::dm3::message::MessageHash;
use dm3_bridge_connector::{BoxFuture, ConversationId, NetworkMessageId};

use super::failure::FailureKind;

/// One message known on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedMessage {
    pub dm3_hash: MessageHash,
    pub network_message_id: NetworkMessageId,
    /// The portal the message was carried in.
    pub conversation: ConversationId,
}

/// The map could not be read (the database is down or shutting down): retry later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the message map is unavailable: {0}")]
pub struct ReferenceError(pub String);

impl ReferenceError {
    pub fn kind(&self) -> FailureKind {
        FailureKind::RETRY
    }
}

/// Lookups in the message map of one network.
pub trait MessageReferences: Send + Sync {
    /// The message whose DM3 hash is `hash`, if the bridge carried it.
    fn by_dm3_hash<'a>(
        &'a self,
        hash: &'a MessageHash,
    ) -> BoxFuture<'a, Result<Option<MappedMessage>, ReferenceError>>;

    /// The message whose network id is `id`, if the bridge carried it.
    fn by_network_id<'a>(
        &'a self,
        id: &'a NetworkMessageId,
    ) -> BoxFuture<'a, Result<Option<MappedMessage>, ReferenceError>>;
}

/// The network id of `hash` within `conversation`; `None` when unknown there.
pub(crate) async fn network_target(
    references: &dyn MessageReferences,
    conversation: &ConversationId,
    hash: &MessageHash,
) -> Result<Option<NetworkMessageId>, ReferenceError> {
    Ok(references
        .by_dm3_hash(hash)
        .await?
        .filter(|mapped| &mapped.conversation == conversation)
        .map(|mapped| mapped.network_message_id))
}

/// The DM3 hash of the network message `id` within `conversation`; `None` when unknown there.
pub(crate) async fn dm3_target(
    references: &dyn MessageReferences,
    conversation: &ConversationId,
    id: &NetworkMessageId,
) -> Result<Option<MessageHash>, ReferenceError> {
    Ok(references
        .by_network_id(id)
        .await?
        .filter(|mapped| &mapped.conversation == conversation)
        .map(|mapped| mapped.dm3_hash))
}

#[cfg(test)]
pub(crate) mod memory {
    //! An in-memory map for the converters' tests.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    pub struct MemoryReferences {
        pub entries: Mutex<Vec<MappedMessage>>,
        pub unavailable: bool,
    }

    impl MemoryReferences {
        pub fn record(&self, dm3_hash: MessageHash, network_message_id: &str, conversation: &str) {
            let mapped = MappedMessage {
                dm3_hash,
                network_message_id: NetworkMessageId::new(network_message_id).unwrap(),
                conversation: ConversationId::new(conversation).unwrap(),
            };
            self.entries.lock().unwrap().push(mapped);
        }

        fn find(
            &self,
            pick: impl Fn(&MappedMessage) -> bool,
        ) -> Result<Option<MappedMessage>, ReferenceError> {
            if self.unavailable {
                return Err(ReferenceError("test: database down".into()));
            }
            let entries = self.entries.lock().map_err(|_| ReferenceError("poisoned".into()))?;
            Ok(entries.iter().find(|m| pick(m)).cloned())
        }
    }

    impl MessageReferences for MemoryReferences {
        fn by_dm3_hash<'a>(
            &'a self,
            hash: &'a MessageHash,
        ) -> BoxFuture<'a, Result<Option<MappedMessage>, ReferenceError>> {
            Box::pin(async move { self.find(|m| &m.dm3_hash == hash) })
        }

        fn by_network_id<'a>(
            &'a self,
            id: &'a NetworkMessageId,
        ) -> BoxFuture<'a, Result<Option<MappedMessage>, ReferenceError>> {
            Box::pin(async move { self.find(|m| &m.network_message_id == id) })
        }
    }
}
