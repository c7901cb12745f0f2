//! The network-neutral model of dm3-bridge: what the engine and every connector agree on.
//!
//! The engine (in the `dm3-bridge` service) speaks DM3; a connector speaks one other network
//! (Matrix, Telegram). This crate is the narrow waist between them, so it knows neither: no DM3
//! name, key or envelope appears here, and no network's wire format. A DM3 user is only an
//! opaque [`RemoteIdentity`] to a connector.
//!
//! The shape follows mautrix bridgev2 (`mautrix/go`, `bridgev2/networkinterface.go`): a small
//! required [`Connector`] trait, optional capability traits for edits, reactions, deletes,
//! receipts and media, and per-conversation [`Capabilities`] that the engine checks *before*
//! calling a connector, so content a network cannot carry gets an explicit
//! [`Unsupported`] status instead of being lost.
//!
//! - [`id`]: the typed ids, each a validated newtype;
//! - [`message`]: text, replies, edits, reactions, deletes and read receipts;
//! - [`attachment`]: files, inline or by URL;
//! - [`native`]: content already in a network's own format (a DM3 client's bridge payload, or
//!   the original content of a network event), an optional capability;
//! - [`event`]: what a connector hands the engine ([`InboundEvent`]) and what the engine asks
//!   a connector to send ([`Outbound`]);
//! - [`command`]: the commands network users give the bridge about a DM3 user (block, unblock,
//!   help), one vocabulary for every network;
//! - [`capabilities`]: what a conversation can carry, and the check that names what it cannot;
//! - [`config`]: the problems a connector finds in its own config section;
//! - [`connector`]: the traits and their error;
//! - [`health`]: what a connector says about itself (a receiving task that died), for `/ready`;
//! - [`sink`]: where a connector hands what it received ([`InboundSink`]), durably and once;
//! - [`dispatch`]: the one place that gates an outbound event on capabilities and routes it to
//!   the right trait.

pub mod attachment;
pub mod capabilities;
pub mod command;
pub mod config;
pub mod connector;
pub mod dispatch;
pub mod event;
pub mod future;
pub mod health;
pub mod id;
pub mod message;
pub mod native;
pub mod sink;

pub use attachment::{Attachment, AttachmentError, AttachmentSource, MimeType};
pub use capabilities::{Capabilities, Feature, MediaLimits, Unsupported};
pub use command::{Command, CommandRequest, CommandVerb};
pub use config::ConfigProblem;
pub use connector::{
    Connector, ConnectorError, DecryptFailure, DecryptionHandling, DeleteHandling, EditHandling,
    MediaHandling, NativeHandling, PortalHandling, PortalStatus, ReactionHandling, ReceiptHandling,
};
pub use dispatch::deliver;
pub use event::{
    Carried, ConversationChange, EncryptedEvent, EventKind, Inbound, InboundEvent, Outbound, PortalRequest,
    SealedEnvelope, Unbridgeable,
};
pub use future::BoxFuture;
pub use health::Health;
pub use id::{
    ConversationId, IdError, IdempotencyKey, NetworkId, NetworkMessageId, NetworkUserId, RemoteIdentity,
};
pub use message::{Content, Delete, Edit, Message, Reaction, ReactionKey, ReadReceipt, Text};
pub use native::{NativeContent, NativeMessage};
pub use sink::{Accepted, InboundBatch, InboundSink, SinkError};
