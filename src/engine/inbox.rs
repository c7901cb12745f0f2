//! The inbox: DM3 messages for the node's virtual identities, on their way to a network.
//!
//! The relay's submit ([`crate::delivery`]) checks and authenticates an envelope for a virtual
//! identity exactly as for a registered account, then, instead of postmarking and storing it
//! for retrieval, hands it to the [`InboxSink`] the node plugged in: [`BridgeInbox`], which
//! queues it in the engine's [`Queue`] with [`job`] — the same (receiver, hash) key as the
//! envelopes table, so a replay is a duplicate, and ordered per (receiver, sender): one DM3
//! conversation, bounded in length, its sender warned of a backlog ([`super::backlog`]).
//! Before that, the sender must not be blocked by the receiver nor shut out of a suspended
//! portal ([`super::blocks`]), and both must be within their rate limits
//! ([`super::inbox_limits`]); a message queued before a block is dropped when its turn comes.
//! The handler ([`InboxHandler`]) opens, verifies, converts and delivers it through the
//! receiver's connector (docs/engine.md).

use std::collections::HashMap;
use std::sync::Arc;

use dm3::ens::EnsName;
use dm3::message::MessageHash;
use dm3::network::Network;
use dm3_bridge_connector::{
    BoxFuture, Connector, ConnectorError, ConversationId, EventKind, IdempotencyKey, NetworkId,
    NetworkMessageId, NetworkUserId, Outbound, RemoteIdentity, deliver,
};

use super::aliases::AliasHold;
use super::backlog::{InboxBounds, warning_job};
use super::blocks;
use super::dm3::convert::{ToNetwork, to_network};
use super::dm3::open::open_inbound;
use super::dm3::sealed::sealed_event;
use super::inbox_limits::InboxLimits;
use super::job::{InboxPayload, JobPayload, Report};
use super::parts::{EngineParts, Failure};
use super::portals::paused_state;
use super::references::StoredReferences;
use super::worker::FailureCause;
use super::{JobHandler, Outcome, Queue};
use crate::clock::now_ms;
use crate::protocol::{Carriage, DeliveryError, InboxSink};
use crate::store::{CappedInsert, ClaimedJob, Inserted, NewEnvelope, NewJob, NewMapping, QueueName};
use crate::telemetry::metrics::{BRIDGE_SEND_DURATION, BRIDGED_MESSAGES, GATEWAY_ENVELOPES};

/// The inbox job of an envelope for a virtual identity, carried as `carriage` says. Both kinds
/// share the key and the conversation: a replay is a duplicate, and a conversation stays in
/// order across a switch of custody.
pub fn job(envelope: &NewEnvelope, carriage: Carriage) -> Result<NewJob, serde_json::Error> {
    let payload = InboxPayload {
        receiver: envelope.receiver.to_string(),
        sender: envelope.sender.to_string(),
        message_hash: envelope.message_hash.to_string(),
        envelope: envelope.envelope.clone(),
    };
    let idempotency_key = format!("{}:{}", payload.receiver, payload.message_hash);
    let conversation = format!("{}:{}", payload.receiver, payload.sender);
    let payload = match carriage {
        Carriage::Opened => JobPayload::Envelope(payload),
        Carriage::Sealed => JobPayload::Sealed(payload),
    };
    Ok(NewJob {
        queue: QueueName::Inbox,
        idempotency_key,
        conversation,
        payload: payload.to_json()?,
        expires_at_ms: envelope.expires_at_ms,
    })
}

/// The bridge's inbox as the relay sees it: the [`Queue`], bounded per conversation, guarded by
/// blocks and rate limits, and the networks that run on this node with their connectors' ids
/// (so the relay refuses envelopes for identities of any other, and finds their portals).
pub struct BridgeInbox {
    queue: Queue,
    networks: HashMap<Network, NetworkId>,
    bounds: InboxBounds,
    limits: InboxLimits,
    /// The cap on what waits for a Telegram username's holder ([`super::aliases`]).
    aliases: Option<AliasHold>,
}

impl BridgeInbox {
    pub fn new(
        queue: Queue,
        networks: impl IntoIterator<Item = (Network, NetworkId)>,
        bounds: InboxBounds,
        limits: InboxLimits,
    ) -> Self {
        Self { queue, networks: networks.into_iter().collect(), bounds, limits, aliases: None }
    }

    /// Holds messages to Telegram username aliases, within `aliases`' cap.
    pub fn with_aliases(mut self, aliases: AliasHold) -> Self {
        self.aliases = Some(aliases);
        self
    }

    /// Refuses the envelope if its receiver blocked its sender or left their conversation, or if
    /// either is past its rate limit (in that order: a blocked sender spends no budget of the
    /// user who blocked them).
    async fn admit(&self, envelope: &NewEnvelope, network: Option<Network>) -> Result<(), DeliveryError> {
        let network_id = network.and_then(|network| self.networks.get(&network));
        if let Some(refusal) =
            blocks::refusal(self.queue.store(), network_id, &envelope.receiver, &envelope.sender).await?
        {
            return Err(refusal);
        }
        self.limits.check(&envelope.sender, &envelope.receiver)
    }

    /// Queues the warning of a backlog; the envelope is accepted either way, so a failure here
    /// is logged, not answered.
    async fn warn(&self, envelope: &NewEnvelope, job: &NewJob, pending: u64) {
        let queued = match warning_job(envelope, &job.conversation, pending, &self.bounds) {
            Ok(warning) => {
                self.queue.enqueue(&warning, envelope.received_at_ms).await.map_err(|e| e.to_string())
            }
            Err(error) => Err(error.to_string()),
        };
        match queued {
            Ok(_) => {
                tracing::info!(conversation = %job.conversation, pending, "a DM3 sender was warned of their backlog")
            }
            Err(error) => {
                tracing::warn!(conversation = %job.conversation, %error, "queueing a backlog warning failed")
            }
        }
    }
}

impl InboxSink for BridgeInbox {
    fn queue_envelope<'a>(
        &'a self,
        envelope: &'a NewEnvelope,
        network: Option<Network>,
        carriage: Carriage,
    ) -> BoxFuture<'a, Result<Inserted, DeliveryError>> {
        Box::pin(async move {
            self.admit(envelope, network).await?;
            let job = job(envelope, carriage)
                .map_err(|e| DeliveryError::Internal(format!("queueing for the bridge: {e}")))?;
            let held_cap = match &self.aliases {
                Some(aliases) => aliases.cap_for(envelope).await?,
                None => None,
            };
            let cap = held_cap.map_or(self.bounds.max_pending, |held| held.min(self.bounds.max_pending));
            match self.queue.enqueue_capped(&job, envelope.received_at_ms, cap).await? {
                CappedInsert::New { pending } => {
                    if pending == self.bounds.warn_at() {
                        self.warn(envelope, &job, pending).await;
                    }
                    Ok(Inserted::New)
                }
                CappedInsert::Duplicate => Ok(Inserted::Duplicate),
                CappedInsert::Full => match (held_cap, &self.aliases) {
                    (Some(held), Some(aliases)) if held < self.bounds.max_pending => {
                        Err(aliases.refuse(&self.queue, envelope).await)
                    }
                    _ => Err(self.bounds.refusal(envelope)),
                },
            }
        })
    }

    fn serves(&self, network: Network) -> bool {
        self.networks.contains_key(&network)
    }
}

/// Works inbox jobs (docs/engine.md, "Inbox").
pub struct InboxHandler {
    pub(crate) parts: Arc<EngineParts>,
}

impl JobHandler for InboxHandler {
    fn handle(&self, job: ClaimedJob) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            match self.deliver(&job).await {
                Ok(outcome) => outcome,
                Err(failure) => failure.into_outcome(),
            }
        })
    }

    fn on_failed<'a>(&'a self, job: &'a ClaimedJob, reason: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let Ok((payload, carriage)) = read(job) else {
                return Ok(()); // nothing names a sender to tell
            };
            if carriage == Carriage::Sealed {
                // A report would be a DM3 message signed by the identity, whose keys are the
                // user's (docs/engine.md, "Gateway mode"): logged, and left in the job list.
                tracing::warn!(conversation = %job.conversation, %reason, "a sealed envelope for a self-custody identity failed");
                return Ok(());
            }
            let report = Report::ToDm3 {
                from: payload.receiver.clone(),
                to: payload.sender.clone(),
                failed_hash: payload.message_hash.clone(),
                reason: reason.to_owned(),
                at_ms: u64::try_from(now_ms()).unwrap_or_default(),
            };
            self.parts.queue_report(&job.idempotency_key, &job.conversation, &report).await
        })
    }
}

/// Where an inbox job goes: its names, the receiver's network and connector.
struct Target {
    receiver: EnsName,
    sender: EnsName,
    network: Network,
    connector: Arc<dyn Connector>,
    network_id: NetworkId,
    local_user: NetworkUserId,
    remote: RemoteIdentity,
}

impl InboxHandler {
    async fn deliver(&self, job: &ClaimedJob) -> Result<Outcome, Failure> {
        let (payload, carriage) = read(job)?;
        let Some(target) = self.target(job, &payload).await? else {
            return Ok(Outcome::Done);
        };
        match carriage {
            Carriage::Opened => self.deliver_opened(job, &payload, &target).await,
            Carriage::Sealed => self.deliver_sealed(job, &payload, &target).await,
        }
    }

    /// The job's receiver and sender, unless the message is dropped (its sender was blocked
    /// after it was queued) or held (a Telegram username's alias not yet bound).
    async fn target(&self, job: &ClaimedJob, payload: &InboxPayload) -> Result<Option<Target>, Failure> {
        let parts = &self.parts;
        let receiver = EnsName::parse(&payload.receiver)
            .map_err(|e| Failure::permanent(format!("the receiver is not a name: {e}")))?;
        let sender = EnsName::parse(&payload.sender)
            .map_err(|e| Failure::permanent(format!("the sender is not a name: {e}")))?;
        if blocks::dropped(&parts.store, &receiver, &sender).await.map_err(Failure::store)? {
            tracing::info!(conversation = %job.conversation, "a message queued before its sender was blocked was dropped");
            return Ok(None);
        }
        if let Some(username) = parts.vault.alias_username(&receiver) {
            parts.alias_gate(job, payload, &receiver, &username.to_string(), &sender).await?;
        }
        let identity = parts.vault.recent(&receiver).await.map_err(Failure::identity)?;
        if identity.disabled_at_ms.is_some() {
            return Err(Failure::permanent(format!("{receiver} is disabled on this bridge"))
                .because(FailureCause::Identity));
        }
        let network = identity.user.network();
        let connector = parts.connector(network)?;
        let network_id = connector.network().clone();
        let remote = RemoteIdentity::new(sender.to_string()).map_err(Failure::permanent)?;
        let local_user = NetworkUserId::new(identity.user.user_id()).map_err(Failure::permanent)?;
        Ok(Some(Target { receiver, sender, network, connector, network_id, local_user, remote }))
    }

    /// The live portal of the target's conversation, opened if there is none; a message to a
    /// user who has not consented yet is held.
    async fn portal(&self, target: &Target) -> Result<ConversationId, Failure> {
        let parts = &self.parts;
        let (conversation, consent) = parts
            .portal_for(
                target.connector.as_ref(),
                &target.receiver,
                &target.sender,
                &target.local_user,
                &target.remote,
            )
            .await?;
        if consent.is_awaited() {
            parts.hold_until_consent(&target.network_id, &conversation, &target.local_user).await?;
        }
        Ok(conversation)
    }

    /// A custodial identity's message: opened, verified, converted and sent.
    async fn deliver_opened(
        &self,
        job: &ClaimedJob,
        payload: &InboxPayload,
        target: &Target,
    ) -> Result<Outcome, Failure> {
        let parts = &self.parts;
        let Target { receiver, network, network_id, .. } = target;
        let keys = parts.vault.opening_keys(receiver).await.map_err(Failure::identity)?;
        let opened = open_inbound(&payload.envelope, receiver, &keys, &parts.directory)
            .await
            .map_err(|e| Failure::from_kind(e.kind(), e.to_string()))?;
        let conversation = self.portal(target).await?;
        // A reachable user's derived identity is stored once a message reaches them
        // (docs/names.md, "Reachable before first use"); a no-op for every stored one.
        parts.vault.keep(receiver, now_ms()).await.map_err(Failure::identity)?;
        let references = StoredReferences { store: &parts.store, network: network_id };
        let converted = to_network(&opened, *network, &conversation, &references, &parts.attachment_limits)
            .await
            .map_err(|e| Failure::from_kind(e.kind(), e.to_string()))?;
        let (events, payload_refused) = match converted {
            ToNetwork::Send(events) => (events, None),
            ToNetwork::Rendered { events, payload_refused } => (events, Some(payload_refused)),
            ToNetwork::Skip(why) => {
                tracing::debug!(why, "nothing to send for an inbound DM3 message");
                return Ok(Outcome::Done);
            }
        };
        let hash = opened.message_hash.to_string();
        let mut bridged = None;
        for (index, event) in events.into_iter().enumerate() {
            let key = format!("dm3-{hash}{}", ToNetwork::idempotency_suffix(index));
            let sent = self.send(job, target, &conversation, key, Some(opened.timestamp_ms), event).await?;
            // The first event stands for the message (a reply names it). Recorded with the
            // job's completion; a retry sends it again under the same key and learns its id.
            if let (0, Some(network_message_id)) = (index, sent) {
                bridged = Some(NewMapping {
                    network: network_id.clone(),
                    dm3_hash: opened.message_hash,
                    network_message_id,
                    conversation: conversation.clone(),
                });
            }
        }
        if let Some(reason) = payload_refused {
            // After the send, so the warning says what happened. Its own key: a later failure
            // report of this job must not be taken for a duplicate of it.
            let report = Report::ToDm3Warning {
                from: payload.receiver.clone(),
                to: payload.sender.clone(),
                about_hash: hash.clone(),
                warning: format!(
                    "The bridge sent the text of your message instead of its bridge payload: {reason}"
                ),
                at_ms: opened.timestamp_ms,
            };
            let key = format!("{}#payload", job.idempotency_key);
            parts.queue_report(&key, &job.conversation, &report).await.map_err(Failure::retry)?;
        }
        metrics::counter!(BRIDGED_MESSAGES, "direction" => "dm3_to_network", "network" => network.as_str())
            .increment(1);
        Ok(bridged.map_or(Outcome::Done, Outcome::Bridged))
    }

    /// A self-custody identity's envelope (docs/gateway.md section 5): carried as it was
    /// sealed, in the network's gateway event, under the key a bridged message has
    /// (`dm3-<hash>`). The node cannot open it and does not try; the hash is the one the
    /// sender wrote, checked at submit.
    async fn deliver_sealed(
        &self,
        job: &ClaimedJob,
        payload: &InboxPayload,
        target: &Target,
    ) -> Result<Outcome, Failure> {
        let parts = &self.parts;
        let hash: MessageHash = payload
            .message_hash
            .parse()
            .map_err(|e| Failure::permanent(format!("the inbox job's hash is not a hash: {e}")))?;
        let event = sealed_event(target.network, &payload.envelope, parts.vault.delivery_service())
            .map_err(Failure::permanent)?;
        let conversation = self.portal(target).await?;
        let key = format!("dm3-{hash}");
        let sent = self.send(job, target, &conversation, key, None, event).await?;
        metrics::counter!(GATEWAY_ENVELOPES, "direction" => "dm3_to_network", "network" => target.network.as_str())
            .increment(1);
        Ok(sent.map_or(Outcome::Done, |network_message_id| {
            Outcome::Bridged(NewMapping {
                network: target.network_id.clone(),
                dm3_hash: hash,
                network_message_id,
                conversation,
            })
        }))
    }

    /// Sends one event of `job` into the portal under `key`. A conversation that carries
    /// nothing now, or nothing in the clear (a room switched to encrypted, found at the send),
    /// pauses the portal as its change would.
    async fn send(
        &self,
        job: &ClaimedJob,
        target: &Target,
        conversation: &ConversationId,
        key: String,
        timestamp_ms: Option<u64>,
        event: EventKind,
    ) -> Result<Option<NetworkMessageId>, Failure> {
        let connector = target.connector.as_ref();
        let outbound = Outbound {
            conversation: conversation.clone(),
            sender: target.remote.clone(),
            idempotency_key: IdempotencyKey::new(key).map_err(Failure::permanent)?,
            timestamp_ms,
            // Any run before this one may have posted the event and died before it heard so.
            retry: job.attempt > 1,
            payload: event,
        };
        let started = std::time::Instant::now();
        let sent = deliver(connector, &outbound).await;
        metrics::histogram!(BRIDGE_SEND_DURATION, "network" => target.network_id.to_string(), "direction" => "dm3_to_network")
            .record(started.elapsed().as_secs_f64());
        if let Err(ConnectorError::Unsupported(refusal)) = &sent
            && let Some(state) = paused_state(refusal)
        {
            let blocked = self.parts.conversation_blocked(
                connector,
                conversation,
                &target.local_user,
                &target.remote,
                state,
            );
            return Err(blocked.await);
        }
        sent.map_err(Failure::connector)
    }
}

/// The envelope an inbox job carries, and how.
fn read(job: &ClaimedJob) -> Result<(InboxPayload, Carriage), Failure> {
    match JobPayload::of(job) {
        Ok(JobPayload::Envelope(payload)) => Ok((payload, Carriage::Opened)),
        Ok(JobPayload::Sealed(payload)) => Ok((payload, Carriage::Sealed)),
        Ok(_) => Err(Failure::permanent("the inbox job holds no envelope")),
        Err(e) => Err(Failure::permanent(format!("the inbox job is unreadable: {e}"))),
    }
}
