//! The traits a connector implements: one small required trait, and optional capabilities.
//!
//! As in mautrix bridgev2 (`mautrix/go`, `bridgev2/networkinterface.go`), a minimal connector sends text and nothing
//! else; edits, reactions, deletes, read receipts and media are separate traits it grows into.
//! Go discovers those by type assertion; here [`Connector`] has one accessor per capability
//! (`fn edits(&self) -> Option<&dyn EditHandling>`) that returns `None` unless the connector
//! overrides it. The engine holds connectors as `Arc<dyn Connector>`, so the traits are
//! dyn-compatible and return [`BoxFuture`]s.
//!
//! Errors are classified for the engine's retry policy, not described for a person:
//! [`ConnectorError::RetryAfter`] and [`ConnectorError::Transient`] are retried (with the
//! network's own delay when it gave one, e.g. Matrix `retry_after_ms`), [`ConnectorError::Permanent`]
//! and [`ConnectorError::Unsupported`] are reported to the sender.

use std::time::Duration;

use url::Url;

use crate::attachment::Attachment;
use crate::capabilities::{Capabilities, Unsupported};
use crate::event::Outbound;
use crate::event::{EncryptedEvent, Inbound, PortalRequest};
use crate::future::BoxFuture;
use crate::health::Health;
use crate::id::{ConversationId, NetworkId, NetworkMessageId, NetworkUserId, RemoteIdentity};
use crate::message::{Delete, Edit, Message, Reaction, ReadReceipt};
use crate::native::NativeMessage;

/// Why a connector call failed, classified for the retry policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// The network rate-limited us; try again after the delay, if it gave one.
    #[error("rate limited by the network{}", .0.map(|d| format!(", retry after {} ms", d.as_millis())).unwrap_or_default())]
    RetryAfter(Option<Duration>),
    /// A failure that may pass: network unreachable, timeout, a 5xx.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// A failure that will not pass by retrying: refused, not found, malformed.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The conversation cannot carry this content.
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
}

impl ConnectorError {
    /// Whether the engine should try again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ConnectorError::RetryAfter(_) | ConnectorError::Transient(_))
    }
}

/// What every connector does.
pub trait Connector: Send + Sync {
    /// Which network this connector serves.
    fn network(&self) -> &NetworkId;

    /// Starts receiving from the network (after the engine is ready to take inbound events).
    fn start(&self) -> BoxFuture<'_, Result<(), ConnectorError>>;

    /// Stops receiving; in-flight work is finished or left to be retried.
    fn stop(&self) -> BoxFuture<'_, Result<(), ConnectorError>>;

    /// Whether the connector works now ([`crate::health`]); healthy unless it says otherwise.
    fn health(&self) -> Health {
        Health::Healthy
    }

    /// What `conversation` can carry now.
    fn capabilities<'a>(
        &'a self,
        conversation: &'a ConversationId,
    ) -> BoxFuture<'a, Result<Capabilities, ConnectorError>>;

    /// Sends a new message; answers the network's id for it.
    fn send_message<'a>(
        &'a self,
        message: &'a Outbound<Message>,
    ) -> BoxFuture<'a, Result<NetworkMessageId, ConnectorError>>;

    /// A link that opens the network user's conversation with the bridge carrying `token`, for a
    /// DM3 sender to forward to a contact the bridge cannot reach first (a Telegram deep link);
    /// `None` if the network has none, or not yet.
    fn start_link(&self, token: &str) -> Option<String> {
        let _ = token;
        None
    }

    /// Edits, if this connector can send them.
    fn edits(&self) -> Option<&dyn EditHandling> {
        None
    }

    /// Reactions, if this connector can send them.
    fn reactions(&self) -> Option<&dyn ReactionHandling> {
        None
    }

    /// Deletes, if this connector can send them.
    fn deletes(&self) -> Option<&dyn DeleteHandling> {
        None
    }

    /// Read receipts, if this connector can send them.
    fn receipts(&self) -> Option<&dyn ReceiptHandling> {
        None
    }

    /// Media transfer, if this connector moves files.
    fn media(&self) -> Option<&dyn MediaHandling> {
        None
    }

    /// Opening conversations, if the network has one per pair of users (Matrix DM rooms).
    fn portals(&self) -> Option<&dyn PortalHandling> {
        None
    }

    /// Content in the network's own format (bridge payloads), if this connector sends it.
    fn native(&self) -> Option<&dyn NativeHandling> {
        None
    }

    /// Opens the network's encrypted events, if it has any ([`DecryptionHandling`]).
    fn decryption(&self) -> Option<&dyn DecryptionHandling> {
        None
    }
}

/// Conversations the bridge opens or joins on the network.
pub trait PortalHandling: Send + Sync {
    /// A remote user writes to `local` for the first time: open a conversation between
    /// `remote`'s stand-in and `local` (Matrix: the ghost creates a DM room and invites the user).
    fn open_portal<'a>(
        &'a self,
        local: &'a NetworkUserId,
        remote: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<ConversationId, ConnectorError>>;

    /// Whether a conversation [`open_portal`](Self::open_portal) opens awaits the user's
    /// consent (Matrix: they are only invited) rather than existing with it (a Telegram chat the
    /// user started): then only a few messages are held until they accept.
    fn opening_awaits_consent(&self) -> bool {
        false
    }

    /// The engine accepted `request`: `remote`'s stand-in joins the conversation.
    fn join_portal<'a>(&'a self, request: &'a PortalRequest) -> BoxFuture<'a, Result<(), ConnectorError>>;

    /// The engine refused `request` (policy, unknown identity): leave it with `reason` shown.
    fn refuse_portal<'a>(
        &'a self,
        request: &'a PortalRequest,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>>;

    /// Where the portal between `user` and `remote`'s stand-in in `conversation` stands now,
    /// looked at afresh (a [`crate::ConversationChange`] only says that something changed).
    /// Networks whose conversations cannot change members (a bot's private chat) are always
    /// live.
    fn check_portal<'a>(
        &'a self,
        conversation: &'a ConversationId,
        user: &'a NetworkUserId,
        remote: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<PortalStatus, ConnectorError>> {
        let _ = (conversation, user, remote);
        Box::pin(async { Ok(PortalStatus::Live) })
    }

    /// `remote`'s stand-in leaves `conversation` for good, with `reason` shown (the portal moved
    /// elsewhere or an admin unlinked it). Leaving a conversation it is not in is no error.
    fn leave_portal<'a>(
        &'a self,
        conversation: &'a ConversationId,
        remote: &'a RemoteIdentity,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        let _ = (conversation, remote, reason);
        Box::pin(async { Ok(()) })
    }
}

/// A portal's conversation as the network shows it ([`PortalHandling::check_portal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalStatus {
    /// A direct chat between the two people, nobody else able to read it: messages cross.
    Live,
    /// The same, but the network user was only invited by the stand-in and has not accepted:
    /// messages cross (they wait for the user in the conversation), and the user's consent is
    /// still pending (docs/engine.md, "First contact").
    Invited,
    /// The network user left the conversation or rejected its invite, for `reason`: messages
    /// must not cross. To a portal still awaiting consent this is the user declining.
    Left { reason: String },
    /// Messages must not cross, for `reason` (in words for both sides: "eve joined the room").
    Suspended { reason: String },
    /// A direct chat of the two that is end-to-end encrypted in a way the connector cannot
    /// write: only content a client encrypted for it itself (a bridge payload) crosses, anything
    /// else fails for `reason` at the send ([`crate::Unsupported::CiphertextOnly`]).
    CiphertextOnly { reason: String },
    /// The conversation was replaced by `successor` (Matrix: a room upgrade), which the
    /// stand-in joined and which is a direct chat between the two: the portal moves there.
    Moved { successor: ConversationId },
}

/// Sending edits.
pub trait EditHandling: Send + Sync {
    /// Replaces the text of an earlier message; answers the network's id of the edit event.
    fn send_edit<'a>(
        &'a self,
        edit: &'a Outbound<Edit>,
    ) -> BoxFuture<'a, Result<NetworkMessageId, ConnectorError>>;
}

/// Sending reactions.
pub trait ReactionHandling: Send + Sync {
    /// Reacts to an earlier message; answers the network's id of the reaction (to delete it later).
    fn send_reaction<'a>(
        &'a self,
        reaction: &'a Outbound<Reaction>,
    ) -> BoxFuture<'a, Result<NetworkMessageId, ConnectorError>>;
}

/// Sending deletes.
pub trait DeleteHandling: Send + Sync {
    /// Removes an earlier message or reaction.
    fn send_delete<'a>(&'a self, delete: &'a Outbound<Delete>) -> BoxFuture<'a, Result<(), ConnectorError>>;
}

/// Sending read receipts.
pub trait ReceiptHandling: Send + Sync {
    /// Marks everything up to a message as read by the sender.
    fn send_receipt<'a>(
        &'a self,
        receipt: &'a Outbound<ReadReceipt>,
    ) -> BoxFuture<'a, Result<(), ConnectorError>>;
}

/// Moving files between the bridge and the network's media store.
pub trait MediaHandling: Send + Sync {
    /// Stores an inline attachment on the network; answers it with a URL source.
    fn upload<'a>(&'a self, attachment: &'a Attachment) -> BoxFuture<'a, Result<Attachment, ConnectorError>>;

    /// Fetches the bytes behind `url`, refusing more than `max_bytes`.
    fn download<'a>(&'a self, url: &'a Url, max_bytes: u64)
    -> BoxFuture<'a, Result<Vec<u8>, ConnectorError>>;
}

/// Sending content already in the network's format ([`crate::native`]).
pub trait NativeHandling: Send + Sync {
    /// Sends `native.payload.content` as it is, adding only the conversation, the reply or
    /// replacement relation and what else the bridge alone decides; answers the network's id of
    /// the message (of the edit, for a replacement). Content the connector cannot send is a
    /// [`ConnectorError::Permanent`] with the reason, never a partial send.
    fn send_native<'a>(
        &'a self,
        native: &'a Outbound<NativeMessage>,
    ) -> BoxFuture<'a, Result<NetworkMessageId, ConnectorError>>;
}

/// Why an encrypted event did not open ([`DecryptionHandling::decrypt`]).
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

/// A connector that opens its network's end-to-end encrypted events in the engine's job
/// ([`crate::EncryptedEvent`]). A missing key is a retry, with backoff, until the connector's
/// [`patience`](Self::patience) runs out; then the sender is told the message could not be
/// read. What the event turns out to be is handled exactly as if it had come in the clear.
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
