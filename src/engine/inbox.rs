//! The inbox: DM3 messages for the node's virtual identities, on their way to a network.
//!
//! The relay's submit ([`crate::delivery`]) checks, postmarks and authenticates an envelope
//! for a virtual identity exactly as for a registered account, then, instead of storing it for
//! retrieval, queues it here with [`job`] — the same (receiver, hash) key as the envelopes
//! table, so a replay is a duplicate, and ordered per (receiver, sender): one DM3 conversation.
//! The handler ([`InboxHandler`]) opens, verifies, converts and delivers it through the
//! receiver's connector (docs/engine.md).

use serde::{Deserialize, Serialize};

use crate::store::{NewEnvelope, NewJob, QueueName};

/// What an inbox job carries: the stored form of the envelope and the names it was checked
/// against at submit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxPayload {
    pub receiver: String,
    pub sender: String,
    pub message_hash: String,
    /// The postmarked envelope, as a registered receiver would fetch it.
    pub envelope: String,
}

/// The inbox job of an envelope for a virtual identity.
pub fn job(envelope: &NewEnvelope) -> Result<NewJob, serde_json::Error> {
    let payload = InboxPayload {
        receiver: envelope.receiver.to_string(),
        sender: envelope.sender.to_string(),
        message_hash: envelope.message_hash.to_string(),
        envelope: envelope.envelope.clone(),
    };
    Ok(NewJob {
        queue: QueueName::Inbox,
        idempotency_key: format!("{}:{}", payload.receiver, payload.message_hash),
        conversation: format!("{}:{}", payload.receiver, payload.sender),
        payload: serde_json::to_string(&payload)?,
        expires_at_ms: envelope.expires_at_ms,
    })
}
