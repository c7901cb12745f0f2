//! DM3 messages ↔ the neutral model of `connectors/core`.
//!
//! | DM3 (docs/protocol.md §5.2) | neutral [`EventKind`] |
//! | --- | --- |
//! | NEW | `Message` (text, or a file with the text as its caption) |
//! | REPLY | `Message` with `reply_to` |
//! | EDIT | `Edit` (the text; an edit's attachments are not carried) |
//! | REACTION | `Reaction` |
//! | DELETE_REQUEST | `Delete` (of a message or of a reaction, as the messenger takes reactions back) |
//! | NEW, REPLY, EDIT with a valid bridge payload | `Native` (the payload verbatim, relations set by the bridge) |
//! | READ_OPENED | `ReadReceipt` (the network user read it / the DM3 user read it) |
//! | READ_RECEIVED | nothing on the way in (no network shows delivery receipts); sent by the engine when a network accepted a message ([`to_dm3::delivery_receipt`]) |
//! | RESEND_REQUEST | nothing (no builder in the reference, nothing to resend from) |
//!
//! References go through the message map ([`MessageReferences`]), within the conversation
//! being converted. When the target is unknown there, the rule is the same both ways:
//! - a **reply** degrades to a plain message: its content is whole without the target (we
//!   cannot quote it: the bridge keeps hashes and ids, not texts);
//! - a **delete** or **read receipt** is skipped: the other side never had the target, so
//!   there is nothing to remove or mark;
//! - an **edit** or **reaction** fails permanently with the reason, so the sender learns that
//!   it did not arrive (it would change or decorate something the other side never saw).
//!
//! [`EventKind`]: dm3_bridge_connector::EventKind
//! [`MessageReferences`]: super::references::MessageReferences

pub mod to_dm3;
pub mod to_network;

pub use to_dm3::{BuiltMessage, ToDm3, delivery_receipt, to_dm3};
pub use to_network::{ToNetwork, to_network};

use super::attachments::AttachmentConvertError;
use super::failure::FailureKind;
use super::references::ReferenceError;

/// Why a message cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// A DM3 message names a target the bridge never carried in this conversation.
    #[error("the {kind} refers to message {reference}, which was never bridged to this conversation")]
    UnknownDm3Target { kind: &'static str, reference: String },
    /// A network event names a target the bridge never carried in this conversation.
    #[error("the {kind} refers to message {target}, which was never bridged to DM3")]
    UnknownNetworkTarget { kind: &'static str, target: String },
    /// A DM3 message of a type that needs `referenceMessageHash` has none.
    #[error("the {kind} message has no referenceMessageHash")]
    MissingReference { kind: &'static str },
    #[error("`{0}` is not a reaction")]
    BadReaction(String),
    #[error("the message has neither text nor attachments")]
    Empty,
    /// The message's bridge payload cannot be used and there is no text to send instead.
    #[error("the message's bridge payload cannot be used ({0}) and it has no text to send instead")]
    PayloadRefused(String),
    #[error(transparent)]
    Attachment(#[from] AttachmentConvertError),
    #[error(transparent)]
    References(#[from] ReferenceError),
}

impl ConvertError {
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::References(e) => e.kind(),
            _ => FailureKind::Permanent,
        }
    }
}
