//! Where a connector hands what it received: the engine's durable inbound queue.
//!
//! Every network redelivers what was not acknowledged (Matrix retries a transaction, Telegram
//! re-serves updates after the last confirmed offset). Nothing is lost only if the connector
//! acknowledges the network *after* [`InboundSink::accept`] returned, and nothing is bridged twice
//! only if the batch carries a key the sink remembers durably. So a batch is stored with its key
//! in one write, and a repeated key answers [`Accepted::Duplicate`] without storing anything.

use serde::{Deserialize, Serialize};

use crate::event::Inbound;
use crate::future::BoxFuture;
use crate::id::{IdempotencyKey, NetworkId};

/// What the network delivered in one go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundBatch {
    /// The connector it came through.
    pub network: NetworkId,
    /// The network's id of the delivery, scoped by the connector so that it is unique for ever
    /// (a Matrix `<registration scope>.<txnId>`, a Telegram `update-<update_id>`).
    pub key: IdempotencyKey,
    /// What it held, in the network's order; may be empty (the key is still remembered).
    pub items: Vec<Inbound>,
}

/// What the sink did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored durably for processing.
    New,
    /// The key was stored before; nothing was queued again.
    Duplicate,
}

/// The batch could not be stored; the connector must not acknowledge the network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the inbound batch could not be stored: {0}")]
pub struct SinkError(pub String);

/// The engine's inbound queue, as a connector sees it.
pub trait InboundSink: Send + Sync {
    /// Durably queues `batch` unless its key was seen; returns only once the write survives a crash.
    fn accept(&self, batch: InboundBatch) -> BoxFuture<'_, Result<Accepted, SinkError>>;
}
