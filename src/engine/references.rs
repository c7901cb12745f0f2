//! The message map of one network, as the DM3 converters look references up in it.

use dm3::message::MessageHash;
use dm3_bridge_connector::{BoxFuture, NetworkId, NetworkMessageId};

use crate::engine::dm3::references::{MappedMessage, MessageReferences, ReferenceError};
use crate::store::{self, Store};

/// [`MessageReferences`] over the store's `message_map`, scoped to one network.
pub struct StoredReferences<'a> {
    pub store: &'a Store,
    pub network: &'a NetworkId,
}

impl MessageReferences for StoredReferences<'_> {
    fn by_dm3_hash<'a>(
        &'a self,
        hash: &'a MessageHash,
    ) -> BoxFuture<'a, Result<Option<MappedMessage>, ReferenceError>> {
        Box::pin(async move {
            let found = self.store.message_by_dm3_hash(self.network, hash).await;
            found.map(|m| m.map(mapped)).map_err(|e| ReferenceError(e.to_string()))
        })
    }

    fn by_network_id<'a>(
        &'a self,
        id: &'a NetworkMessageId,
    ) -> BoxFuture<'a, Result<Option<MappedMessage>, ReferenceError>> {
        Box::pin(async move {
            let found = self.store.message_by_network_id(self.network, id).await;
            found.map(|m| m.map(mapped)).map_err(|e| ReferenceError(e.to_string()))
        })
    }
}

/// A stored row in the converters' terms.
fn mapped(row: store::MappedMessage) -> MappedMessage {
    MappedMessage {
        dm3_hash: row.dm3_hash,
        network_message_id: row.network_message_id,
        conversation: row.conversation,
    }
}
