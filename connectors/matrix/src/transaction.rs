//! Transactions from the homeserver, and the sink that must make them durable.
//!
//! The homeserver pushes events in numbered batches (`PUT /_matrix/app/v1/transactions/{txnId}`)
//! and retries a batch, with the same id and content, until the bridge answers 200. Nothing is
//! lost only if the bridge answers 200 *after* the batch is safely stored, and nothing is
//! delivered twice only if a repeated id is recognised, including across a restart. The bridges
//! we learned from keep the ids in memory only (docs/contributing.md); here the service's
//! [`TransactionSink`] stores the batch and the id in one durable write, and the route answers
//! only when that returns.
//!
//! The sink, not the route, decides what is a duplicate: it holds the durable record. Ids are
//! scoped by [`RegistrationScope`] because the homeserver restarts its numbering when the
//! registration is regenerated.
//!
//! Every engine [`InboundSink`] is a [`TransactionSink`] ([`crate::batch`]): the node hands the
//! engine's queue to the routes as it is, and each transaction reaches it as one keyed batch of
//! neutral items. The trait stays for sinks that want the transaction as received; the
//! connector's tests against Synapse use one to see exactly what the homeserver pushed.
//!
//! [`InboundSink`]: dm3_bridge_connector::InboundSink

use std::future::Future;

use dm3_bridge_connector::NetworkId;
use ruma::OwnedTransactionId;
use ruma::api::appservice::event::push_events::v1::EphemeralData;
use ruma::events::AnyTimelineEvent;
use ruma::serde::Raw;

use crate::command::CommandPrefix;
use crate::ghost::GhostNamespace;
use crate::registration::RegistrationScope;

/// One batch from the homeserver, as received (raw JSON, so nothing is lost by re-serializing a
/// typed view; parse each event with `Raw::deserialize` when handling it), with what it takes
/// to read it: the connector's network and the registration it arrived under.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// The connector's name in the engine's tables.
    pub network: NetworkId,
    /// The registration's ghosts: which senders are the bridge's own stand-ins.
    pub ghosts: GhostNamespace,
    /// How a Matrix user's command to the bridge starts (`matrix.command_prefix`).
    pub commands: CommandPrefix,
    /// The registration generation the batch arrived under.
    pub scope: RegistrationScope,
    /// The homeserver's id of the batch.
    pub txn_id: OwnedTransactionId,
    /// Room timeline events (messages, reactions, redactions, membership, state).
    pub events: Vec<Raw<AnyTimelineEvent>>,
    /// Ephemeral events (receipts, typing), if the registration asked for them.
    pub ephemeral: Vec<Raw<EphemeralData>>,
    /// Whether encrypted events are opened (`[matrix] encryption` is not `off`); if not, each
    /// is refused with [`crate::encryption::ENCRYPTION_OFF`].
    pub decrypts: bool,
}

/// What the sink did with a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored for processing.
    New,
    /// This (scope, txn id) was stored before; nothing was delivered again.
    AlreadySeen,
}

/// The sink could not store a transaction; the route answers 500 and the homeserver retries.
#[derive(Debug, thiserror::Error)]
#[error("the transaction could not be stored: {0}")]
pub struct SinkError(pub String);

/// Where transactions go: implemented by the service over its database.
pub trait TransactionSink: Send + Sync + 'static {
    /// Durably records the transaction and its events in one step, unless (scope, txn id) was
    /// recorded before. Returns only once the record survives a crash.
    fn record(&self, transaction: Transaction) -> impl Future<Output = Result<Recorded, SinkError>> + Send;
}
