//! The outbox: what network users did, on its way to DM3 (docs/engine.md, "Outbox").
//!
//! Connectors hand their batches to [`super::InboundQueue`]; each item is an outbox job whose
//! conversation is the network conversation, so a portal's events go to DM3 in the order the
//! network gave them. The engine's own failure reports ride the same queue ([`Report`]).
//!
//! A DM3 message built here is a pure function of the event (its time is the network's), so a
//! retried job seals the same message, with the same hash, and every delivery service that
//! took it already answers the retry as a duplicate.

use std::sync::Arc;

use dm3::ens::EnsName;
use dm3::message::MessageBuilder;
use dm3_bridge_connector::{
    Attachment, AttachmentSource, BoxFuture, CommandRequest, Content, ConversationChange, ConversationId,
    EventKind, IdempotencyKey, Inbound, InboundEvent, Message, NetworkId, Outbound, PortalRequest,
    RemoteIdentity, SealedEnvelope, Text, Unbridgeable,
};

use super::dm3::convert::{ToDm3, to_dm3};
use super::dm3::deliver::deliver as deliver_to_dm3;
use super::job::{JobPayload, Report};
use super::parts::{EngineParts, Failure};
use super::references::StoredReferences;
use super::worker::FailureCause;
use super::{JobHandler, Outcome};
use crate::identities::network::Network;
use crate::store::{ClaimedJob, NewMapping};
use crate::telemetry::metrics::{BRIDGE_SEND_DURATION, BRIDGED_MESSAGES};

/// Works outbox jobs.
pub struct OutboxHandler {
    pub(crate) parts: Arc<EngineParts>,
}

/// What an outbox job holds.
enum Job {
    Inbound(NetworkId, Box<Inbound>),
    Report(Report),
    Unlinked { network: NetworkId, conversation: ConversationId, remote: RemoteIdentity },
}

impl JobHandler for OutboxHandler {
    fn handle(&self, job: ClaimedJob) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let result = match read(&job) {
                Ok(Job::Inbound(network, item)) => match *item {
                    Inbound::Event(event) => self.event(&network, &event).await,
                    Inbound::PortalRequest(request) => {
                        self.portal_request(&network, &request).await.map(|()| None)
                    }
                    Inbound::ConversationChange(change) => {
                        self.conversation_change(&network, &change).await.map(|()| None)
                    }
                    Inbound::Unbridgeable(event) => self.unbridgeable(&network, &event).await.map(|()| None),
                    Inbound::Command(request) => self.command(&network, &request).await.map(|()| None),
                    Inbound::Sealed(sealed) => self.sealed(&network, &sealed).await,
                },
                Ok(Job::Report(report)) => self.report(&report).await.map(|()| None),
                Ok(Job::Unlinked { network, conversation, remote }) => {
                    self.unlinked(&network, &conversation, &remote).await.map(|()| None)
                }
                Err(failure) => Err(failure),
            };
            match result {
                Ok(Some(mapping)) => Outcome::Bridged(mapping),
                Ok(None) => Outcome::Done,
                Err(failure) => failure.into_outcome(),
            }
        })
    }

    fn on_failed<'a>(&'a self, job: &'a ClaimedJob, reason: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            // Only a network user's own message is reported back; a failed report is logged
            // (reporting a report could loop).
            let Ok(Job::Inbound(network, item)) = read(job) else {
                tracing::warn!(job = %job.id, %reason, "an outbox report failed");
                return Ok(());
            };
            let conversation = match *item {
                Inbound::Event(event) => event.conversation,
                Inbound::Sealed(sealed) => sealed.conversation,
                _ => {
                    tracing::warn!(job = %job.id, %reason, "an outbox job failed");
                    return Ok(());
                }
            };
            let portal = self
                .parts
                .store
                .portal_by_conversation(&network, &conversation)
                .await
                .map_err(|e| e.to_string())?;
            let Some(portal) = portal else {
                tracing::warn!(job = %job.id, %reason, "a message from a conversation without portal failed");
                return Ok(());
            };
            let remote = RemoteIdentity::new(portal.remote_name.to_string()).map_err(|e| e.to_string())?;
            let report = Report::ToNetwork { network, conversation, remote, reason: reason.to_owned() };
            self.parts.queue_report(&job.idempotency_key, &job.conversation, &report).await
        })
    }
}

/// What an outbox job holds, by the kind its payload names.
fn read(job: &ClaimedJob) -> Result<Job, Failure> {
    match JobPayload::of(job) {
        Ok(JobPayload::Inbound { network, item }) => Ok(Job::Inbound(network, item)),
        Ok(JobPayload::Report { report }) => Ok(Job::Report(report)),
        Ok(JobPayload::Unlinked { network, conversation, remote }) => {
            Ok(Job::Unlinked { network, conversation, remote })
        }
        Ok(JobPayload::Envelope(_) | JobPayload::Sealed(_)) => {
            Err(Failure::permanent("an envelope job in the outbox"))
        }
        Err(e) => Err(Failure::permanent(format!("the outbox job is unreadable: {e}"))),
    }
}

impl OutboxHandler {
    fn network(&self, id: &NetworkId) -> Result<Network, Failure> {
        self.parts
            .connectors
            .network_of(id)
            .ok_or_else(|| Failure::retry(format!("no {id} connector is running on this node")))
    }

    /// A sealed envelope from a gateway user's own client ([`super::gateway`]).
    async fn sealed(
        &self,
        network_id: &NetworkId,
        sealed: &SealedEnvelope,
    ) -> Result<Option<NewMapping>, Failure> {
        let network = self.network(network_id)?;
        let connector = self.parts.connector(network)?;
        self.parts.forward_sealed(connector.as_ref(), network, sealed).await
    }

    /// A network user's message to the DM3 user of the portal; what it became, to be recorded
    /// with the job's completion.
    async fn event(
        &self,
        network_id: &NetworkId,
        event: &InboundEvent,
    ) -> Result<Option<NewMapping>, Failure> {
        let parts = &self.parts;
        let network = self.network(network_id)?;
        let portal = parts
            .store
            .portal_by_conversation(network_id, &event.conversation)
            .await
            .map_err(Failure::store)?
            .ok_or_else(|| Failure::permanent("this conversation is not bridged to a DM3 user"))?;
        let from = parse_name(portal.local_name.as_str())?;
        let to = parse_name(portal.remote_name.as_str())?;
        let identity = parts.vault.recent(&from).await.map_err(Failure::identity)?;
        if identity.user.user_id() != event.sender.as_str() {
            // Someone else in the room: only the portal's owner speaks as their identity.
            tracing::debug!(network = %network_id, "ignoring a message from another member of a portal");
            return Ok(None);
        }
        if let Some(reason) = portal.state.pause_reason() {
            if matches!(event.kind, EventKind::ReadReceipt(_)) {
                return Ok(None); // a receipt is not worth a notice
            }
            return Err(Failure::permanent(format!("messages here are paused: {reason}"))
                .because(FailureCause::PortalSuspended));
        }
        if identity.disabled_at_ms.is_some() {
            return Err(Failure::permanent(format!("your DM3 identity {from} is disabled on this bridge"))
                .because(FailureCause::Identity));
        }
        if identity.custody.is_self_custody() {
            // The node holds no key to sign with (docs/gateway.md section 5).
            if matches!(event.kind, EventKind::ReadReceipt(_)) {
                return Ok(None);
            }
            return Err(Failure::permanent(format!(
                "{from} holds its own keys (you claimed it for your wallet), so the bridge cannot sign for you: \
                 your DM3 client must seal the message and send it as a DM3 envelope"
            ))
            .because(FailureCause::Identity));
        }
        let keys = parts.vault.current_keys_of(&identity).await.map_err(Failure::identity)?;
        let signing = &keys.profile_keys().signing;
        let event = &self.fetch_media(network, event).await?;
        let references = StoredReferences { store: &parts.store, network: network_id };
        let built = match to_dm3(event, network, &from, &to, signing, &references, &parts.attachment_limits)
            .await
            .map_err(|e| Failure::from_kind(e.kind(), e.to_string()))?
        {
            ToDm3::Send(built) => built,
            ToDm3::Skip(why) => {
                tracing::debug!(why, "nothing to send for a network event");
                return Ok(None);
            }
        };
        let started = std::time::Instant::now();
        let report =
            deliver_to_dm3(&built.message, signing, &parts.directory, parts.target.as_ref(), &[]).await;
        metrics::histogram!(BRIDGE_SEND_DURATION, "network" => network_id.to_string(), "direction" => "network_to_dm3")
            .record(started.elapsed().as_secs_f64());
        let report = report.map_err(|e| Failure::from_kind(e.kind(), e.to_string()))?;
        report.outcome().map_err(|e| Failure::from_kind(e.kind(), e.to_string()))?;
        let mapping = NewMapping {
            network: network_id.clone(),
            dm3_hash: built.hash,
            network_message_id: event.network_event_id.clone(),
            conversation: event.conversation.clone(),
        };
        metrics::counter!(BRIDGED_MESSAGES, "direction" => "network_to_dm3", "network" => network.as_str())
            .increment(1);
        Ok(Some(mapping))
    }

    /// `event` with a file the network hosts brought inline (DM3 carries files as `data:`
    /// URIs), bounded by the engine's attachment limit.
    async fn fetch_media(&self, network: Network, event: &InboundEvent) -> Result<InboundEvent, Failure> {
        let EventKind::Message(Message { content: Content::Attachment { attachment, caption }, reply_to }) =
            &event.kind
        else {
            return Ok(event.clone());
        };
        let AttachmentSource::Url(url) = attachment.source() else {
            return Ok(event.clone());
        };
        let connector = self.parts.connector(network)?;
        let media = connector
            .media()
            .ok_or_else(|| Failure::permanent(format!("{network} files are not bridged")))?;
        let limit = u64::try_from(self.parts.attachment_limits.max_total_bytes).unwrap_or(u64::MAX);
        let bytes = media.download(url, limit).await.map_err(Failure::connector)?;
        let inline = Attachment::inline(attachment.name(), attachment.mime().clone(), bytes)
            .map_err(|e| Failure::permanent(format!("the file cannot be carried: {e}")))?;
        let mut fetched = event.clone();
        fetched.kind = EventKind::Message(Message {
            content: Content::Attachment { attachment: inline, caption: caption.clone() },
            reply_to: reply_to.clone(),
        });
        Ok(fetched)
    }

    /// A network user opened a conversation with a DM3 user ([`EngineParts::portal_request`]).
    async fn portal_request(&self, network_id: &NetworkId, request: &PortalRequest) -> Result<(), Failure> {
        let network = self.network(network_id)?;
        let connector = self.parts.connector(network)?;
        self.parts.portal_request(network, connector.as_ref(), request).await
    }

    /// An admin unlinked a portal ([`EngineParts::unlinked`]).
    async fn unlinked(
        &self,
        network_id: &NetworkId,
        conversation: &ConversationId,
        remote: &RemoteIdentity,
    ) -> Result<(), Failure> {
        let connector = self.parts.connector(self.network(network_id)?)?;
        self.parts.unlinked(connector.as_ref(), conversation, remote).await
    }

    /// A network user's command in a portal ([`EngineParts::command`]).
    async fn command(&self, network_id: &NetworkId, request: &CommandRequest) -> Result<(), Failure> {
        let connector = self.parts.connector(self.network(network_id)?)?;
        self.parts.command(connector.as_ref(), request).await
    }

    /// A portal's room changed ([`EngineParts::conversation_change`]).
    async fn conversation_change(
        &self,
        network_id: &NetworkId,
        change: &ConversationChange,
    ) -> Result<(), Failure> {
        let connector = self.parts.connector(self.network(network_id)?)?;
        self.parts.conversation_change(connector.as_ref(), change).await
    }

    /// Tells the sender in the conversation that the bridge cannot carry their message.
    async fn unbridgeable(&self, network_id: &NetworkId, event: &Unbridgeable) -> Result<(), Failure> {
        let portal = self
            .parts
            .store
            .portal_by_conversation(network_id, &event.conversation)
            .await
            .map_err(Failure::store)?;
        let Some(portal) = portal else { return Ok(()) };
        let remote = RemoteIdentity::new(portal.remote_name.to_string()).map_err(Failure::permanent)?;
        let report = Report::ToNetwork {
            network: network_id.clone(),
            conversation: event.conversation.clone(),
            remote,
            reason: format!("this message was not delivered: {}", event.reason),
        };
        self.report(&report).await
    }

    async fn report(&self, report: &Report) -> Result<(), Failure> {
        match report {
            Report::ToNetwork { network, conversation, remote, reason } => {
                self.notice(network, conversation, remote, reason).await
            }
            Report::ToDm3 { from, to, failed_hash, reason, at_ms } => {
                let text = format!("⚠️ The bridge could not deliver your message: {reason}");
                self.dm3_report(from, to, failed_hash, &text, *at_ms).await
            }
            Report::ToDm3Warning { from, to, about_hash, warning, at_ms } => {
                self.dm3_report(from, to, about_hash, &format!("⚠️ {warning}"), *at_ms).await
            }
        }
    }

    /// A notice in a network conversation from the DM3 user's stand-in.
    async fn notice(
        &self,
        network_id: &NetworkId,
        conversation: &ConversationId,
        remote: &RemoteIdentity,
        reason: &str,
    ) -> Result<(), Failure> {
        let connector = self.parts.connector(self.network(network_id)?)?;
        let text = format!("⚠️ The bridge could not deliver a message: {reason}");
        let key = notice_key(conversation, &text);
        let notice = Outbound {
            conversation: conversation.clone(),
            sender: remote.clone(),
            idempotency_key: IdempotencyKey::new(key).map_err(Failure::permanent)?,
            timestamp_ms: None,
            retry: false,
            payload: Message::new(Content::Notice(Text::plain(text))),
        };
        connector.send_message(&notice).await.map(|_| ()).map_err(Failure::connector)
    }

    /// A DM3 message from the virtual identity `from` telling `to` about their message
    /// `failed_hash` (that it failed, or went out otherwise than prepared): a reply saying `text`.
    async fn dm3_report(
        &self,
        from: &str,
        to: &str,
        failed_hash: &str,
        text: &str,
        at_ms: u64,
    ) -> Result<(), Failure> {
        let parts = &self.parts;
        let from = parse_name(from)?;
        let keys = parts.vault.current_keys(&from).await.map_err(Failure::identity)?;
        let signing = &keys.profile_keys().signing;
        let failed: dm3::message::MessageHash = failed_hash
            .parse()
            .map_err(|_| Failure::permanent("the failed message's hash is not a message hash"))?;
        // The time was fixed when the report was queued: a retry builds the same message (and
        // hash), which delivery services deduplicate.
        let message = MessageBuilder::new(to, from.as_str(), at_ms).reply(text, &failed, None).sign(signing);
        let report = deliver_to_dm3(&message, signing, &parts.directory, parts.target.as_ref(), &[])
            .await
            .map_err(|e| Failure::from_kind(e.kind(), e.to_string()))?;
        report.outcome().map_err(|e| Failure::from_kind(e.kind(), e.to_string()))
    }
}

fn parse_name(name: &str) -> Result<EnsName, Failure> {
    EnsName::parse(name).map_err(|e| Failure::permanent(format!("`{name}` is not a name: {e}")))
}

/// A stable idempotency key for a notice (`[A-Za-z0-9._~-]`): the same notice in the same
/// conversation is sent once.
fn notice_key(conversation: &ConversationId, text: &str) -> String {
    let digest = dm3::hash::sha256_hex(&format!("{conversation}\n{text}"));
    format!("notice-{}", digest.trim_start_matches("0x"))
}
