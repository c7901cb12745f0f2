//! The test harness: the fake Bot API, in-memory service state, and a connector wired to them.

#![allow(dead_code)]

pub mod bot_api;
pub mod memory;

use std::sync::Arc;

use dm3_bridge_connector::{ConversationId, IdempotencyKey, Message, Outbound, RemoteIdentity};
use dm3_bridge_telegram::{BotToken, LinkPolicy, RateLimits, TelegramConfig, TelegramConnector};

use bot_api::{BotApi, TOKEN};
use memory::{MemoryAccounts, MemoryChatState, MemorySink};

/// DM3 names the fake accounts know.
pub const KNOWN_NAMES: [&str; 3] = ["alice.eth", "bob.eth", "zoë.eth"];

/// A connector against a fresh fake, with its in-memory service side.
pub struct Harness {
    pub api: BotApi,
    pub sink: Arc<MemorySink>,
    pub state: Arc<MemoryChatState>,
    pub accounts: Arc<MemoryAccounts>,
    pub connector: TelegramConnector,
}

/// A polling configuration pointed at `api`, with pacing off (tests send fast).
pub fn config(api: &BotApi) -> TelegramConfig {
    let mut config = TelegramConfig::new(BotToken::new(TOKEN));
    config.api_url = Some(api.url.clone());
    config.poll_timeout_secs = 1;
    config.request_timeout_secs = 30;
    config.rate_limits = RateLimits { per_chat_interval_ms: 0, global_per_second: 10_000, max_wait_ms: 5000 };
    config
}

impl Harness {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(adjust: impl FnOnce(&mut TelegramConfig)) -> Self {
        let api = BotApi::start().await;
        let mut config = config(&api);
        adjust(&mut config);
        let sink = Arc::new(MemorySink::default());
        let state = Arc::new(MemoryChatState::default());
        let accounts = Arc::new(MemoryAccounts::knowing(&KNOWN_NAMES));
        let connector =
            TelegramConnector::new(config, sink.clone(), state.clone(), accounts.clone()).unwrap();
        Self { api, sink, state, accounts, connector }
    }

    /// A second connector on the same fake and the same service side (a restarted process).
    pub fn restarted(&self) -> TelegramConnector {
        TelegramConnector::new(
            config(&self.api),
            self.sink.clone(),
            self.state.clone(),
            self.accounts.clone(),
        )
        .unwrap()
    }
}

/// An allow-list policy.
pub fn only(users: &[u64]) -> LinkPolicy {
    LinkPolicy::Users { users: users.to_vec() }
}

/// An outbound request from `sender` into the conversation of `chat` with `sender`.
pub fn outbound<T>(chat: i64, sender: &str, key: &str, payload: T) -> Outbound<T> {
    Outbound {
        conversation: ConversationId::new(format!("{chat}/{sender}")).unwrap(),
        sender: RemoteIdentity::new(sender).unwrap(),
        idempotency_key: IdempotencyKey::new(key).unwrap(),
        timestamp_ms: None,
        retry: false,
        payload,
    }
}

pub fn text_message(body: &str) -> Message {
    Message::new(dm3_bridge_connector::Content::Text(dm3_bridge_connector::Text::plain(body)))
}
