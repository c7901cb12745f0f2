//! The loopback connector: every send recorded, every write of its users handed to the engine.
//!
//! A conversation is the pair of one of its users and one DM3 user, `<user>/<DM3 name>` (a DM3
//! name holds no `/`), opened by either side: by the engine ([`PortalHandling::open_portal`]) or
//! by the user's first [`LoopbackConnector::write`], which asks the engine for the portal.
//!
//! Sends are idempotent as on a real network: a retry with the same idempotency key is answered
//! with the id of the first send and recorded once. The echo is handed to the engine under a
//! key derived from the sent message's id, so a retried send does not echo twice either.
//!
//! Everything lives in memory and is lost at a restart, which is fine for what it is for; the
//! engine's own records (portals, message map, queues) are durable as for any network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use dm3_bridge_connector::{
    Accepted, BoxFuture, Capabilities, Connector, ConnectorError, Content, ConversationId, Delete,
    DeleteHandling, Edit, EditHandling, EventKind, Health, IdempotencyKey, Inbound, InboundBatch,
    InboundEvent, InboundSink, Message, NetworkId, NetworkMessageId, NetworkUserId, Outbound, PortalHandling,
    PortalRequest, Reaction, ReactionHandling, ReadReceipt, ReceiptHandling, RemoteIdentity, SinkError, Text,
};

use crate::config::LoopbackConfig;

/// The largest file the loopback records: a Telegram gateway document's bound (1 MiB), since
/// the loopback carries the users of Telegram.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// What the loopback network did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
// Records are few and live in a test's memory; a box per send would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    /// The engine sent something to a user (once per idempotency key).
    Sent { id: NetworkMessageId, outbound: Outbound<EventKind> },
    /// The engine opened a conversation for a DM3 user writing to `local` first.
    Opened { conversation: ConversationId, local: NetworkUserId, remote: RemoteIdentity },
    /// The engine accepted a user's request for a conversation.
    Joined(PortalRequest),
    /// The engine refused it, for `reason`.
    Refused { request: PortalRequest, reason: String },
}

/// The loopback network's connector.
pub struct LoopbackConnector {
    config: LoopbackConfig,
    sink: Arc<dyn InboundSink>,
    state: Mutex<State>,
    /// Numbers the ids it makes, with the start time so that ids stay new across restarts.
    next: AtomicU64,
    started_ms: u64,
}

#[derive(Default)]
struct State {
    records: Vec<Record>,
    sent: HashMap<IdempotencyKey, NetworkMessageId>,
    /// What [`Connector::health`] answers; a test sets it to see the node report it.
    health: Health,
    /// Every send is refused for good with this reason, as a network that blocked the bot
    /// would; a test sets it to see the node report and count the failure.
    refusing: Option<String>,
    /// How many of the next sends the network takes and then restarts before it answers: the
    /// answer is lost and the keys it saw are forgotten, as a Synapse that died mid-send.
    lost_answers: usize,
}

impl LoopbackConnector {
    /// The connector of `config`, handing what its users write to `sink`.
    pub fn new(config: LoopbackConfig, sink: Arc<dyn InboundSink>) -> Self {
        Self { config, sink, state: Mutex::default(), next: AtomicU64::new(1), started_ms: now_ms() }
    }

    /// Makes the connector report `health`, as a network whose receiving side failed would:
    /// for tests of what the node does with an unhealthy network (`/ready`).
    pub fn set_health(&self, health: Health) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).health = health;
    }

    /// Makes every send fail for good with `reason` (`None`: sends go through again).
    pub fn refuse_sends(&self, reason: Option<&str>) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).refusing = reason.map(str::to_owned);
    }

    /// Makes the next `count` sends reach the network, which then restarts before it answers:
    /// the engine hears a temporary failure, and the network no longer knows their keys. Only
    /// a retry that looks for its earlier message ([`Outbound::retry`]) does not post again.
    pub fn lose_answers(&self, count: usize) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).lost_answers = count;
    }

    /// The network whose users it carries (`users_of`).
    pub fn users_of(&self) -> &NetworkId {
        &self.config.users_of
    }

    /// The conversation of `user` with `remote`.
    pub fn conversation(
        user: &NetworkUserId,
        remote: &RemoteIdentity,
    ) -> Result<ConversationId, ConnectorError> {
        ConversationId::new(format!("{user}/{remote}")).map_err(|e| ConnectorError::Permanent(e.to_string()))
    }

    /// Everything recorded so far, in order.
    pub fn records(&self) -> Vec<Record> {
        self.state().records.clone()
    }

    /// What the engine sent, in order.
    pub fn sent(&self) -> Vec<Outbound<EventKind>> {
        self.records()
            .into_iter()
            .filter_map(|record| match record {
                Record::Sent { outbound, .. } => Some(outbound),
                _ => None,
            })
            .collect()
    }

    /// `user` writes `text` to the DM3 user `remote`: one batch asking for the conversation
    /// (the engine opens it once) and holding the message. Answers the message's id once the
    /// engine stored the batch.
    pub async fn write(
        &self,
        user: &NetworkUserId,
        remote: &RemoteIdentity,
        text: &str,
    ) -> Result<NetworkMessageId, SinkError> {
        let conversation = Self::conversation(user, remote).map_err(|e| SinkError(e.to_string()))?;
        let id = self.new_id("in").map_err(|e| SinkError(e.to_string()))?;
        let timestamp_ms = now_ms();
        let request = PortalRequest {
            conversation: conversation.clone(),
            requester: user.clone(),
            remote: remote.clone(),
            timestamp_ms,
            network_event_id: None,
        };
        let event = InboundEvent {
            conversation,
            sender: user.clone(),
            network_event_id: id.clone(),
            timestamp_ms,
            kind: EventKind::Message(Message::new(Content::Text(Text::plain(text)))),
            original: None,
        };
        self.receive(&id, vec![Inbound::PortalRequest(request), Inbound::Event(event)]).await?;
        Ok(id)
    }

    /// Hands `items` to the engine as one batch keyed by `id`; answers once it is stored.
    pub async fn receive(&self, id: &NetworkMessageId, items: Vec<Inbound>) -> Result<Accepted, SinkError> {
        let key =
            IdempotencyKey::new(format!("batch-{}", id.as_str())).map_err(|e| SinkError(e.to_string()))?;
        self.sink.accept(InboundBatch { network: self.config.network.clone(), key, items }).await
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn new_id(&self, prefix: &str) -> Result<NetworkMessageId, ConnectorError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        NetworkMessageId::new(format!("{prefix}-{}-{n}", self.started_ms))
            .map_err(|e| ConnectorError::Permanent(e.to_string()))
    }

    /// Records `outbound` under its key, once; answers its id.
    fn record_send(&self, outbound: Outbound<EventKind>) -> Result<NetworkMessageId, ConnectorError> {
        let mut state = self.state();
        if let Some(reason) = &state.refusing {
            return Err(ConnectorError::Permanent(reason.clone()));
        }
        if let Some(id) = state.sent.get(&outbound.idempotency_key) {
            return Ok(id.clone());
        }
        if outbound.retry
            && let Some(id) = state.records.iter().find_map(|record| match record {
                Record::Sent { id, outbound: earlier }
                    if earlier.idempotency_key == outbound.idempotency_key =>
                {
                    Some(id.clone())
                }
                _ => None,
            })
        {
            state.sent.insert(outbound.idempotency_key, id.clone());
            return Ok(id);
        }
        let id = self.new_id("out")?;
        state.sent.insert(outbound.idempotency_key.clone(), id.clone());
        state.records.push(Record::Sent { id: id.clone(), outbound });
        if state.lost_answers > 0 {
            state.lost_answers -= 1;
            state.sent.clear();
            return Err(ConnectorError::Transient("the network restarted before it answered".to_owned()));
        }
        Ok(id)
    }

    fn record(&self, record: Record) {
        self.state().records.push(record);
    }

    /// The receiver of `message` answers with its words, when `echo` is on. Notices (the
    /// engine's reports) are not answered.
    async fn echo(&self, message: &Outbound<Message>, id: &NetworkMessageId) -> Result<(), ConnectorError> {
        if !self.config.echo || matches!(message.payload.content, Content::Notice(_)) {
            return Ok(());
        }
        let Some((user, _)) = message.conversation.as_str().rsplit_once('/') else {
            return Err(ConnectorError::Permanent(format!(
                "{} is no loopback conversation",
                message.conversation
            )));
        };
        let event = InboundEvent {
            conversation: message.conversation.clone(),
            sender: NetworkUserId::new(user).map_err(|e| ConnectorError::Permanent(e.to_string()))?,
            network_event_id: NetworkMessageId::new(format!("echo-{}", id.as_str()))
                .map_err(|e| ConnectorError::Permanent(e.to_string()))?,
            timestamp_ms: now_ms(),
            kind: EventKind::Message(Message::new(message.payload.content.clone())),
            original: None,
        };
        let echo_id = event.network_event_id.clone();
        self.receive(&echo_id, vec![Inbound::Event(event)])
            .await
            .map(|_| ())
            .map_err(|e| ConnectorError::Transient(e.to_string()))
    }
}

impl Connector for LoopbackConnector {
    fn network(&self) -> &NetworkId {
        &self.config.network
    }

    fn start(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(async { Ok(()) })
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(async { Ok(()) })
    }

    fn health(&self) -> Health {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).health.clone()
    }

    /// Everything, files up to [`MAX_FILE_BYTES`]: a file is recorded with the message that
    /// carries it, bytes and all (there is no media store; a gateway document, the one file the
    /// engine makes itself, arrives inline).
    fn capabilities<'a>(
        &'a self,
        _: &'a ConversationId,
    ) -> BoxFuture<'a, Result<Capabilities, ConnectorError>> {
        Box::pin(async { Ok(Capabilities::full(MAX_FILE_BYTES)) })
    }

    fn send_message<'a>(
        &'a self,
        message: &'a Outbound<Message>,
    ) -> BoxFuture<'a, Result<NetworkMessageId, ConnectorError>> {
        Box::pin(async move {
            let id = self.record_send(message.with_payload(EventKind::Message(message.payload.clone())))?;
            self.echo(message, &id).await?;
            Ok(id)
        })
    }

    fn edits(&self) -> Option<&dyn EditHandling> {
        Some(self)
    }

    fn reactions(&self) -> Option<&dyn ReactionHandling> {
        Some(self)
    }

    fn deletes(&self) -> Option<&dyn DeleteHandling> {
        Some(self)
    }

    fn receipts(&self) -> Option<&dyn ReceiptHandling> {
        Some(self)
    }

    fn portals(&self) -> Option<&dyn PortalHandling> {
        Some(self)
    }
}

impl EditHandling for LoopbackConnector {
    fn send_edit<'a>(
        &'a self,
        edit: &'a Outbound<Edit>,
    ) -> BoxFuture<'a, Result<NetworkMessageId, ConnectorError>> {
        Box::pin(async move { self.record_send(edit.with_payload(EventKind::Edit(edit.payload.clone()))) })
    }
}

impl ReactionHandling for LoopbackConnector {
    fn send_reaction<'a>(
        &'a self,
        reaction: &'a Outbound<Reaction>,
    ) -> BoxFuture<'a, Result<NetworkMessageId, ConnectorError>> {
        Box::pin(async move {
            self.record_send(reaction.with_payload(EventKind::Reaction(reaction.payload.clone())))
        })
    }
}

impl DeleteHandling for LoopbackConnector {
    fn send_delete<'a>(&'a self, delete: &'a Outbound<Delete>) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            self.record_send(delete.with_payload(EventKind::Delete(delete.payload.clone()))).map(|_| ())
        })
    }
}

impl ReceiptHandling for LoopbackConnector {
    fn send_receipt<'a>(
        &'a self,
        receipt: &'a Outbound<ReadReceipt>,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            self.record_send(receipt.with_payload(EventKind::ReadReceipt(receipt.payload.clone())))
                .map(|_| ())
        })
    }
}

impl PortalHandling for LoopbackConnector {
    fn open_portal<'a>(
        &'a self,
        local: &'a NetworkUserId,
        remote: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<ConversationId, ConnectorError>> {
        Box::pin(async move {
            let conversation = Self::conversation(local, remote)?;
            self.record(Record::Opened {
                conversation: conversation.clone(),
                local: local.clone(),
                remote: remote.clone(),
            });
            Ok(conversation)
        })
    }

    fn join_portal<'a>(&'a self, request: &'a PortalRequest) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            self.record(Record::Joined(request.clone()));
            Ok(())
        })
    }

    fn refuse_portal<'a>(
        &'a self,
        request: &'a PortalRequest,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            self.record(Record::Refused { request: request.clone(), reason: reason.to_owned() });
            Ok(())
        })
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use dm3_bridge_connector::deliver;

    use super::*;

    /// The engine's sink, in memory: batches deduplicated by key.
    #[derive(Default)]
    struct Engine {
        batches: Mutex<Vec<InboundBatch>>,
    }

    impl InboundSink for Engine {
        fn accept(&self, batch: InboundBatch) -> BoxFuture<'_, Result<Accepted, SinkError>> {
            let mut batches = self.batches.lock().unwrap();
            let accepted = if batches.iter().any(|b| b.key == batch.key) {
                Accepted::Duplicate
            } else {
                batches.push(batch);
                Accepted::New
            };
            Box::pin(async move { Ok(accepted) })
        }
    }

    fn connector(echo: bool) -> (Arc<Engine>, LoopbackConnector) {
        let engine = Arc::new(Engine::default());
        let config = LoopbackConfig { echo, ..LoopbackConfig::default() };
        (engine.clone(), LoopbackConnector::new(config, engine))
    }

    fn text(key: &str, body: &str) -> Outbound<EventKind> {
        Outbound {
            conversation: ConversationId::new("7/alice.eth").unwrap(),
            sender: RemoteIdentity::new("alice.eth").unwrap(),
            idempotency_key: IdempotencyKey::new(key).unwrap(),
            timestamp_ms: Some(1),
            retry: false,
            payload: EventKind::Message(Message::new(Content::Text(Text::plain(body)))),
        }
    }

    #[tokio::test]
    async fn a_retried_send_is_recorded_once_and_answered_with_the_same_id() {
        let (engine, loopback) = connector(false);
        let first = deliver(&loopback, &text("k1", "hi")).await.unwrap();
        let again = deliver(&loopback, &text("k1", "hi")).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(loopback.sent(), [text("k1", "hi")]);
        assert!(engine.batches.lock().unwrap().is_empty(), "no echo unless asked for");
    }

    #[tokio::test]
    async fn the_echo_is_the_users_answer_handed_to_the_engine_once() {
        let (engine, loopback) = connector(true);
        deliver(&loopback, &text("k1", "ping")).await.unwrap();
        deliver(&loopback, &text("k1", "ping")).await.unwrap();
        let batches = engine.batches.lock().unwrap().clone();
        assert_eq!(batches.len(), 1, "{batches:#?}");
        let [Inbound::Event(echo)] = &batches[0].items[..] else { panic!("{batches:#?}") };
        assert_eq!((echo.conversation.as_str(), echo.sender.as_str()), ("7/alice.eth", "7"));
        assert_eq!(echo.kind, EventKind::Message(Message::new(Content::Text(Text::plain("ping")))));
    }

    #[tokio::test]
    async fn a_users_write_asks_for_the_conversation_and_carries_the_message() {
        let (engine, loopback) = connector(false);
        let user = NetworkUserId::new("7").unwrap();
        let alice = RemoteIdentity::new("alice.eth").unwrap();
        let id = loopback.write(&user, &alice, "hello").await.unwrap();
        let batches = engine.batches.lock().unwrap().clone();
        let [Inbound::PortalRequest(request), Inbound::Event(event)] = &batches[0].items[..] else {
            panic!("{batches:#?}")
        };
        assert_eq!((request.conversation.as_str(), request.remote.as_str()), ("7/alice.eth", "alice.eth"));
        assert_eq!((event.network_event_id.clone(), event.sender.as_str()), (id, "7"));
        assert_eq!(batches[0].network.as_str(), "loopback");
    }
}
