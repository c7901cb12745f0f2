//! Events crossing the connector boundary, in both directions.
//!
//! - [`InboundEvent`]: a connector saw something happen on its network and hands it to the
//!   engine, which persists it (the outbox) before the connector acknowledges the network.
//! - [`Outbound`]: the engine asks a connector to make something happen, on behalf of a
//!   [`RemoteIdentity`] (the connector's stand-in for that user sends it), with an
//!   [`IdempotencyKey`] so that a retry after a crash or timeout does not post twice.
//!
//! Both carry the same [`EventKind`], so the vocabulary is defined once.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::attachment::Attachment;
use crate::command::CommandRequest;
use crate::id::{ConversationId, IdempotencyKey, NetworkMessageId, NetworkUserId, RemoteIdentity};
use crate::message::{Delete, Edit, Message, Reaction, ReadReceipt};
use crate::native::{NativeContent, NativeMessage};

/// What happened (inbound) or should happen (outbound).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Message(Message),
    Edit(Edit),
    Reaction(Reaction),
    Delete(Delete),
    ReadReceipt(ReadReceipt),
    /// Content already in the network's format (outbound only: a DM3 client's bridge payload);
    /// boxed, being the largest and rarest.
    Native(Box<NativeMessage>),
}

/// Something a network user did in a bridged conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundEvent {
    /// Where: the portal.
    pub conversation: ConversationId,
    /// Who, as the network names them.
    pub sender: NetworkUserId,
    /// The network's id of this event: the key for deduplication and for the message map.
    pub network_event_id: NetworkMessageId,
    /// When, in milliseconds since the Unix epoch, as the network stamped it.
    pub timestamp_ms: u64,
    /// What.
    pub kind: EventKind,
    /// The event's content in the network's own format, as received (Matrix: the event type and
    /// `content`; Telegram: the Bot API call that would reproduce the message), where the
    /// connector keeps it. The engine attaches it to the DM3 message as a bridge payload so an
    /// SDK-aware reader can show the original formatting. Boxed: it is rare next to the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Box<NativeContent>>,
}

/// A network user asked to talk with a remote user (Matrix: invited a ghost into a DM).
///
/// The engine decides (the operator's policy, whether the remote identity exists), records the
/// portal, and asks the connector to take part ([`crate::PortalHandling::join_portal`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalRequest {
    /// The conversation the network user opened.
    pub conversation: ConversationId,
    /// Who opened it.
    pub requester: NetworkUserId,
    /// Whom they want to talk with.
    pub remote: RemoteIdentity,
    /// When, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The network's id of the invite, where it has one: a second invite into the same
    /// conversation (after the stand-in left it) is a new request, not a replay of the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_event_id: Option<NetworkMessageId>,
}

/// Something changed in a conversation that decides whether it may stay a portal (Matrix: a
/// member joined, was invited or left, the join rule or history visibility changed, the room
/// was upgraded or encrypted). It carries no verdict: the engine asks the connector to look at
/// the conversation as it is now ([`crate::PortalHandling::check_portal`]), so a replayed or
/// late change decides nothing on stale facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationChange {
    pub conversation: ConversationId,
    /// The network's id of the event that changed it: the key that makes a replay a duplicate.
    pub network_event_id: NetworkMessageId,
    /// What changed, in words for logs.
    pub what: String,
}

/// A network event the bridge cannot carry; the engine tells the sender so (never silence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unbridgeable {
    pub conversation: ConversationId,
    pub sender: NetworkUserId,
    pub network_event_id: NetworkMessageId,
    /// Why, in words for the sender.
    pub reason: String,
}

/// A DM3 envelope a network user's own client sealed (gateway mode, `docs/gateway.md` section
/// 5), as the network carried it. Opaque here: the engine reads the gateway document out of it,
/// checks it against the sender's self-custody identity and forwards the envelope unopened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedEnvelope {
    pub conversation: ConversationId,
    pub sender: NetworkUserId,
    pub network_event_id: NetworkMessageId,
    pub carried: Carried,
}

/// How a network carries a gateway document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Carried {
    /// Inside the event's content (Matrix: the content of the `network.dm3.envelope` message,
    /// exactly as the homeserver sent it).
    Content(Map<String, Value>),
    /// As a file the network hosts (Telegram: a document), fetched by the engine within the
    /// gateway's bound, which its declared size is checked against first.
    File(Attachment),
}

/// Everything a connector hands the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
// An event is the common case and each item lives only until the sink has stored it, so the
// other variants' unused bytes cost nothing worth a box on every event.
#[allow(clippy::large_enum_variant)]
pub enum Inbound {
    Event(InboundEvent),
    PortalRequest(PortalRequest),
    Unbridgeable(Unbridgeable),
    ConversationChange(ConversationChange),
    /// A command to the bridge in the conversation (`!dm3 block`): never bridged as a message.
    Command(CommandRequest),
    /// A sealed DM3 envelope from a gateway user's own client: forwarded, never opened.
    Sealed(SealedEnvelope),
}

impl Inbound {
    /// The conversation it belongs to: the unit of ordering in the engine's queues.
    pub fn conversation(&self) -> &ConversationId {
        match self {
            Inbound::Event(event) => &event.conversation,
            Inbound::PortalRequest(request) => &request.conversation,
            Inbound::Unbridgeable(unbridgeable) => &unbridgeable.conversation,
            Inbound::ConversationChange(change) => &change.conversation,
            Inbound::Command(command) => &command.conversation,
            Inbound::Sealed(sealed) => &sealed.conversation,
        }
    }
}

/// A request to a connector to act in a conversation on behalf of a remote user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbound<T> {
    /// Where: the portal.
    pub conversation: ConversationId,
    /// On whose behalf: the connector's stand-in for this identity acts.
    pub sender: RemoteIdentity,
    /// Makes the send idempotent on the network.
    pub idempotency_key: IdempotencyKey,
    /// The original time, in milliseconds since the Unix epoch, where the network lets a bridge
    /// set it (Matrix `?ts=`); `None` lets the network stamp it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<u64>,
    /// Whether this send was tried before under the same key (a run that crashed counts): the
    /// network may hold its event already, though it answered nothing. A network that forgets
    /// idempotency keys (Synapse keeps an appservice's transaction ids in memory only) looks
    /// for that event before it posts again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry: bool,
    /// What to do.
    pub payload: T,
}

impl<T> Outbound<T> {
    /// The same request with another payload (used to narrow an `Outbound<EventKind>` to the
    /// payload type of one capability trait).
    pub fn with_payload<U>(&self, payload: U) -> Outbound<U> {
        Outbound {
            conversation: self.conversation.clone(),
            sender: self.sender.clone(),
            idempotency_key: self.idempotency_key.clone(),
            timestamp_ms: self.timestamp_ms,
            retry: self.retry,
            payload,
        }
    }
}
