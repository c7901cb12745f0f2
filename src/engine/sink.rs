//! The connectors' entry into the engine: an [`InboundSink`] that turns each inbound batch
//! into outbox jobs, durably and once.
//!
//! A batch becomes one transaction: its key in `inbound_batches` and one outbox job per item.
//! The connector acknowledges its network only after [`InboundSink::accept`] returned, so
//! nothing is lost; a redelivered batch finds its key and queues nothing, so nothing is
//! bridged twice. The same event arriving in two different batches (a network that re-sends an
//! event in a new transaction) is caught by the job key, derived from the network's own id:
//! - an event: `<network>:<network event id>`;
//! - a portal request: `<network>:portal:<conversation>:<requester>` (it has no event id;
//!   a second request for the same conversation by the same user is the same request);
//! - an unbridgeable event: `<network>:<event id>:unbridgeable` (apart from the event's key,
//!   in case a network reports the same event both ways);
//! - a command to the bridge: `<network>:command:<event id>`.
//!
//! The job's conversation is `<network>:<conversation>`, so each network conversation is
//! ordered on its own. The payload is [`JobPayload::Inbound`]: the item and the network it
//! came from; the outbox handler reads it back.
//!
//! The batch is remembered under the network's key *and* a digest of its items' job keys
//! ([`stored_batch_key`]): a network may give a new batch the id of an old one. Synapse on
//! SQLite restarts its transaction numbering at 1 when it restarts (element-hq/synapse#14556),
//! and with the key alone every batch after such a restart would be taken for a replay and
//! dropped until the numbers passed the old ones. A true replay has the same items, so the
//! same digest, and is a duplicate; a replay with fewer or other items (Synapse drops a retried
//! transaction's receipts) is remembered anew, and its items' own keys keep each of them from
//! being queued twice.

use std::time::Duration;

use dm3_bridge_connector::{
    Accepted, BoxFuture, ConversationId, Inbound, InboundBatch, InboundSink, NetworkId, SinkError,
};

use dm3::hash::sha256;

use crate::clock::now_ms;
use crate::store::{BatchKey, Inserted, NewJob, QueueName};
use crate::telemetry::metrics as names;

use super::Queue;
use super::job::JobPayload;

/// The engine's [`InboundSink`]: cheap to clone, one per connector or shared.
#[derive(Clone)]
pub struct InboundQueue {
    queue: Queue,
    ttl: Option<Duration>,
}

impl InboundQueue {
    /// Jobs never expire by themselves.
    pub fn new(queue: Queue) -> Self {
        Self { queue, ttl: None }
    }

    /// Jobs not delivered within `ttl` of their arrival fail (the relay's message TTL).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// [`InboundSink::accept`] at a given time.
    pub async fn accept_at(&self, batch: InboundBatch, now_ms: i64) -> Result<Accepted, SinkError> {
        let expires_at_ms =
            self.ttl.map(|ttl| now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)));
        let InboundBatch { network, key: batch_key, items } = batch;
        let jobs = items
            .into_iter()
            .map(|item| {
                let idempotency_key = job_key(&network, &item);
                let conversation = job_conversation(&network, item.conversation());
                let payload = JobPayload::Inbound { network: network.clone(), item: Box::new(item) }
                    .to_json()
                    .map_err(|e| SinkError(format!("an inbound item could not be serialized: {e}")))?;
                Ok(NewJob { queue: QueueName::Outbox, idempotency_key, conversation, payload, expires_at_ms })
            })
            .collect::<Result<Vec<_>, SinkError>>()?;
        let key = BatchKey { network: network.clone(), key: stored_batch_key(batch_key.as_str(), &jobs) };
        match self.queue.enqueue_batch(Some(&key), &jobs, now_ms).await {
            Ok(inserted) => {
                let (accepted, label) = match inserted {
                    Inserted::New => (Accepted::New, "new"),
                    Inserted::Duplicate => (Accepted::Duplicate, "duplicate"),
                };
                metrics::counter!(names::ENGINE_INBOUND_BATCHES,
                    "network" => network.as_str().to_owned(), "outcome" => label)
                .increment(1);
                Ok(accepted)
            }
            Err(error) => {
                tracing::error!(%network, batch = %batch_key, %error, "storing an inbound batch failed");
                Err(SinkError(error.to_string()))
            }
        }
    }
}

impl InboundSink for InboundQueue {
    fn accept(&self, batch: InboundBatch) -> BoxFuture<'_, Result<Accepted, SinkError>> {
        Box::pin(self.accept_at(batch, now_ms()))
    }
}

/// The key a batch is remembered under: `<network's key>#<digest of the job keys>`, the first
/// 16 bytes of SHA-256 over the keys in order, in hex (see the module doc).
pub fn stored_batch_key(network_key: &str, jobs: &[NewJob]) -> String {
    let mut keys = Vec::new();
    for job in jobs {
        keys.extend_from_slice(job.idempotency_key.as_bytes());
        keys.push(0); // the store refuses control characters in keys: joined, they stay apart
    }
    let digest: String = sha256(&keys).iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{network_key}#{digest}")
}

/// The outbox job key of an inbound item (see the module doc).
pub fn job_key(network: &NetworkId, item: &Inbound) -> String {
    match item {
        Inbound::Event(event) => format!("{network}:{}", event.network_event_id),
        Inbound::PortalRequest(request) => match &request.network_event_id {
            Some(invite) => {
                format!("{network}:portal:{}:{}:{invite}", request.conversation, request.requester)
            }
            None => format!("{network}:portal:{}:{}", request.conversation, request.requester),
        },
        Inbound::ConversationChange(change) => format!("{network}:change:{}", change.network_event_id),
        Inbound::Unbridgeable(event) => format!("{network}:{}:unbridgeable", event.network_event_id),
        Inbound::Command(command) => format!("{network}:command:{}", command.network_event_id),
        // A network message is one or the other: its id alone keys it, as for an event.
        Inbound::Sealed(sealed) => format!("{network}:{}", sealed.network_event_id),
        Inbound::Encrypted(encrypted) => format!("{network}:{}", encrypted.network_event_id),
    }
}

/// The job conversation of a network conversation: the unit of ordering in the outbox.
pub fn job_conversation(network: &NetworkId, conversation: &ConversationId) -> String {
    format!("{network}:{conversation}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(key: &str) -> NewJob {
        NewJob {
            queue: QueueName::Outbox,
            idempotency_key: key.to_owned(),
            conversation: "matrix:!room".to_owned(),
            payload: "{}".to_owned(),
            expires_at_ms: None,
        }
    }

    #[test]
    fn a_reused_batch_id_with_other_items_is_another_batch() {
        let first = stored_batch_key("scope.1", &[job("matrix:$a"), job("matrix:$b")]);
        assert!(first.starts_with("scope.1#"), "{first}");
        assert_eq!(first, stored_batch_key("scope.1", &[job("matrix:$a"), job("matrix:$b")]));
        assert_ne!(first, stored_batch_key("scope.1", &[job("matrix:$c")]));
        assert_ne!(first, stored_batch_key("scope.1", &[job("matrix:$a")]));
        assert_ne!(first, stored_batch_key("scope.2", &[job("matrix:$a"), job("matrix:$b")]));
        // Joining is unambiguous: one key "ab" is not two keys "a", "b".
        assert_ne!(stored_batch_key("k", &[job("ab")]), stored_batch_key("k", &[job("a"), job("b")]));
        assert_eq!(stored_batch_key("k", &[]).len(), "k#".len() + 32);
    }
}
