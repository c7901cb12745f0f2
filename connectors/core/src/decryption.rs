//! Events a network carried end-to-end encrypted, opened by the connector in the engine's job.
//!
//! A network that encrypts its conversations (Matrix's Megolm rooms) delivers an event before
//! the key that opens it may have arrived: keys travel on their own path (Matrix's to-device
//! messages), and a sender's client sends them when it likes. So a connector does not open an
//! encrypted event when it hands it over: the event is stored as it came
//! ([`EncryptedEvent`], acknowledged to the network once durable, like any other), and the
//! engine's job asks the connector to open it ([`DecryptionHandling::decrypt`]). A missing key
//! is a retry, with backoff, until the connector's patience runs out; then the sender is told
//! the message could not be read. What the event turns out to be is handled exactly as if it
//! had come in the clear.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::connector::ConnectorError;
use crate::event::Inbound;
use crate::future::BoxFuture;
use crate::id::{ConversationId, NetworkMessageId, NetworkUserId, RemoteIdentity};

/// An event as the network delivered it, still encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedEvent {
    pub conversation: ConversationId,
    pub sender: NetworkUserId,
    pub network_event_id: NetworkMessageId,
    /// The whole event, exactly as received (Matrix: the `m.room.encrypted` event).
    pub event: Map<String, Value>,
}

/// Why an encrypted event did not open.
#[derive(Debug, thiserror::Error)]
pub enum DecryptFailure {
    /// The key has not arrived (yet): hold the event and try again.
    #[error("the key of this message has not arrived: {0}")]
    MissingKey(String),
    /// The event or its key fails a check (a forgery, a key from someone else, a replay): it is
    /// never bridged, and the sender is told why.
    #[error("this message was refused: {0}")]
    Refused(String),
    /// Opening it failed otherwise (the store, the network).
    #[error(transparent)]
    Failed(#[from] ConnectorError),
}

/// A connector that opens its network's encrypted events.
pub trait DecryptionHandling: Send + Sync {
    /// Opens `event` with the keys `remote`'s stand-in received: what the event is, as the
    /// connector would have handed it over in the clear (`None`: nothing to bridge).
    fn decrypt<'a>(
        &'a self,
        event: &'a EncryptedEvent,
        remote: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<Option<Inbound>, DecryptFailure>>;

    /// Asks the sender's devices for the key of `event`, as `remote`'s stand-in, after a first
    /// miss (Matrix: `m.room_key_request`).
    fn request_key<'a>(
        &'a self,
        event: &'a EncryptedEvent,
        remote: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<(), ConnectorError>>;

    /// How long after an event arrived its key may still come; after that the sender is told it
    /// could not be read.
    fn patience(&self) -> Duration;
}
