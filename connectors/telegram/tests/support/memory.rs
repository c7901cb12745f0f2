//! In-memory stand-ins for the service's side, for tests only: the engine's inbound sink, the
//! chat state, and the accounts. The service's implementations are durable; these keep the
//! same contract (idempotent writes, duplicate batch keys answered `Duplicate`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use dm3_bridge_connector::{
    Accepted, BoxFuture, ConversationId, InboundBatch, InboundSink, NetworkMessageId, RemoteIdentity,
    SinkError,
};
use dm3_bridge_telegram::{AppliedUpdate, ChatState, StateError, TelegramAccounts, TelegramUser};

use super::bot_api::wait_until;

/// The engine's inbound queue: remembers keys, keeps new batches in order.
#[derive(Default)]
pub struct MemorySink {
    keys: Mutex<HashSet<String>>,
    batches: Mutex<Vec<InboundBatch>>,
    duplicates: AtomicUsize,
    fail_next: AtomicUsize,
    panic_next: AtomicUsize,
}

impl MemorySink {
    pub fn batches(&self) -> Vec<InboundBatch> {
        self.batches.lock().unwrap().clone()
    }

    pub fn duplicates(&self) -> usize {
        self.duplicates.load(Ordering::SeqCst)
    }

    /// The next `n` accepts fail as a database outage would.
    pub fn fail_next(&self, n: usize) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// The next `n` accepts panic, as a bug anywhere in handling would.
    pub fn panic_next(&self, n: usize) {
        self.panic_next.store(n, Ordering::SeqCst);
    }

    /// The batch stored under `update-<update_id>`, if any.
    pub fn batch_of(&self, update_id: u32) -> Option<InboundBatch> {
        let key = format!("update-{update_id}");
        self.batches().into_iter().find(|b| b.key.as_str() == key)
    }

    /// Waits until the batch of update `update_id` is stored.
    pub async fn wait_for_update(&self, update_id: u32) -> InboundBatch {
        wait_until(|| self.batch_of(update_id)).await
    }

    /// Waits until at least `n` batches were stored.
    pub async fn wait_for(&self, n: usize) -> Vec<InboundBatch> {
        wait_until(|| {
            let batches = self.batches();
            (batches.len() >= n).then_some(batches)
        })
        .await
    }
}

impl InboundSink for MemorySink {
    fn accept(&self, batch: InboundBatch) -> BoxFuture<'_, Result<Accepted, SinkError>> {
        Box::pin(async move {
            if self.panic_next.load(Ordering::SeqCst) > 0 {
                self.panic_next.fetch_sub(1, Ordering::SeqCst);
                panic!("a scripted panic while storing {}", batch.key);
            }
            if self.fail_next.load(Ordering::SeqCst) > 0 {
                self.fail_next.fetch_sub(1, Ordering::SeqCst);
                return Err(SinkError("database unavailable".into()));
            }
            if !self.keys.lock().unwrap().insert(format!("{}/{}", batch.network, batch.key)) {
                self.duplicates.fetch_add(1, Ordering::SeqCst);
                return Ok(Accepted::Duplicate);
            }
            self.batches.lock().unwrap().push(batch);
            Ok(Accepted::New)
        })
    }
}

/// Per-chat state.
#[derive(Default)]
pub struct MemoryChatState {
    current: Mutex<HashMap<i64, RemoteIdentity>>,
    recent: Mutex<HashMap<i64, Vec<RemoteIdentity>>>,
    routes: Mutex<HashMap<NetworkMessageId, ConversationId>>,
    reactions: Mutex<HashMap<NetworkMessageId, NetworkMessageId>>,
    applied: Mutex<HashMap<i64, AppliedUpdate>>,
}

impl MemoryChatState {
    pub fn route(&self, message: &str) -> Option<String> {
        self.routes.lock().unwrap().get(&NetworkMessageId::new(message).unwrap()).map(ToString::to_string)
    }
}

impl ChatState for MemoryChatState {
    fn current_contact(&self, chat: i64) -> BoxFuture<'_, Result<Option<RemoteIdentity>, StateError>> {
        Box::pin(async move { Ok(self.current.lock().unwrap().get(&chat).cloned()) })
    }

    fn set_current_contact<'a>(
        &'a self,
        chat: i64,
        contact: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            self.current.lock().unwrap().insert(chat, contact.clone());
            let mut recent = self.recent.lock().unwrap();
            let list = recent.entry(chat).or_default();
            list.retain(|c| c != contact);
            list.insert(0, contact.clone());
            Ok(())
        })
    }

    fn recent_contacts(
        &self,
        chat: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RemoteIdentity>, StateError>> {
        Box::pin(async move {
            Ok(self
                .recent
                .lock()
                .unwrap()
                .get(&chat)
                .map(|l| l.iter().take(limit).cloned().collect())
                .unwrap_or_default())
        })
    }

    fn record_route<'a>(
        &'a self,
        message: &'a NetworkMessageId,
        conversation: &'a ConversationId,
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            self.routes.lock().unwrap().insert(message.clone(), conversation.clone());
            Ok(())
        })
    }

    fn route_of<'a>(
        &'a self,
        message: &'a NetworkMessageId,
    ) -> BoxFuture<'a, Result<Option<ConversationId>, StateError>> {
        Box::pin(async move { Ok(self.routes.lock().unwrap().get(message).cloned()) })
    }

    fn record_reaction<'a>(
        &'a self,
        slot: &'a NetworkMessageId,
        reaction: &'a NetworkMessageId,
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            self.reactions.lock().unwrap().insert(slot.clone(), reaction.clone());
            Ok(())
        })
    }

    fn reaction_in<'a>(
        &'a self,
        slot: &'a NetworkMessageId,
    ) -> BoxFuture<'a, Result<Option<NetworkMessageId>, StateError>> {
        Box::pin(async move { Ok(self.reactions.lock().unwrap().get(slot).cloned()) })
    }

    fn applied_update(&self, chat: i64) -> BoxFuture<'_, Result<Option<AppliedUpdate>, StateError>> {
        Box::pin(async move { Ok(self.applied.lock().unwrap().get(&chat).copied()) })
    }

    fn record_applied(&self, chat: i64, update: AppliedUpdate) -> BoxFuture<'_, Result<(), StateError>> {
        Box::pin(async move {
            self.applied.lock().unwrap().insert(chat, update);
            Ok(())
        })
    }
}

/// Identities `tg-<id>.tg.bridge.eth`, and a fixed set of DM3 names that exist.
pub struct MemoryAccounts {
    pub known: Mutex<HashSet<String>>,
    pub linked: Mutex<Vec<u64>>,
    /// Failures the next `link` calls answer, in order.
    pub link_failures: Mutex<Vec<StateError>>,
    /// Names whose lookup always answers `Unavailable` (their name source is down), and how
    /// often they were looked up.
    pub unavailable: Mutex<HashMap<String, u32>>,
    /// (Telegram user, sender) pairs blocked.
    pub blocked: Mutex<HashSet<(u64, String)>>,
}

impl MemoryAccounts {
    pub fn knowing(names: &[&str]) -> Self {
        Self {
            known: Mutex::new(names.iter().map(|n| (*n).to_owned()).collect()),
            linked: Mutex::default(),
            link_failures: Mutex::default(),
            unavailable: Mutex::default(),
            blocked: Mutex::default(),
        }
    }

    pub fn add_name(&self, name: &str) {
        self.known.lock().unwrap().insert(name.to_owned());
    }

    pub fn linked(&self) -> Vec<u64> {
        self.linked.lock().unwrap().clone()
    }
}

impl TelegramAccounts for MemoryAccounts {
    fn link<'a>(&'a self, user: &'a TelegramUser) -> BoxFuture<'a, Result<RemoteIdentity, StateError>> {
        Box::pin(async move {
            {
                let mut failures = self.link_failures.lock().unwrap();
                if !failures.is_empty() {
                    return Err(failures.remove(0));
                }
            }
            let mut linked = self.linked.lock().unwrap();
            if !linked.contains(&user.id) {
                linked.push(user.id);
            }
            Ok(RemoteIdentity::new(format!("tg-{}.tg.bridge.eth", user.id)).unwrap())
        })
    }

    fn find_dm3_name<'a>(
        &'a self,
        input: &'a str,
    ) -> BoxFuture<'a, Result<Option<RemoteIdentity>, StateError>> {
        Box::pin(async move {
            let name = input.to_lowercase();
            if let Some(lookups) = self.unavailable.lock().unwrap().get_mut(&name) {
                *lookups += 1;
                return Err(StateError::Unavailable(format!("the name source of {name} is down")));
            }
            Ok(self.known.lock().unwrap().contains(&name).then(|| RemoteIdentity::new(name).unwrap()))
        })
    }

    fn set_blocked<'a>(
        &'a self,
        user: &'a TelegramUser,
        sender: &'a RemoteIdentity,
        blocked: bool,
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            let pair = (user.id, sender.as_str().to_lowercase());
            let mut set = self.blocked.lock().unwrap();
            if blocked {
                set.insert(pair);
            } else {
                set.remove(&pair);
            }
            Ok(())
        })
    }
}
