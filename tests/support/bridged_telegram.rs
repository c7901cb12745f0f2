//! The bridge node with `[telegram]` against the fake Bot API, in a world of DM3 users on a
//! chain: what the Telegram end-to-end tests (`tests/bridge_telegram.rs`,
//! `tests/bridge_bounds.rs`) share. Included with `#[path]` beside `dm3_world`, `support` and
//! `telegram` (the connector's fake Bot API).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use dm3_bridge::config::{AdminToken, Config, DatabaseUrl};
use dm3_bridge::names::directory::Directory;
use dm3_bridge_telegram::{BotToken, LinkPolicy, RateLimits, TelegramConfig};

use crate::dm3_world::{Dm3World, PARENT, Received};
use crate::support::bridge::{self, ADMIN_TOKEN};
use crate::support::node::{TestNode, init_data_dir};
use crate::telegram::bot_api::{BotApi, TOKEN, visible_text};

/// Telegram users the bridge lets link.
pub const ANN: i64 = 1001;
pub const BEN: i64 = 1002;

/// The DM3 name the bridge gives a Telegram user.
pub fn tg_name(user: i64) -> String {
    format!("tg-{user}.tg.{PARENT}")
}

/// The world, the fake Bot API and the bridge between them.
pub struct TgBridged {
    pub world: Dm3World,
    pub api: BotApi,
    pub bridge: TestNode,
    pub directory: Directory,
}

/// The bridge with `[telegram]` against a fresh fake (polling; only [`ANN`] and [`BEN`] may
/// link), on `database` (SQLite when `None`).
pub async fn bridged(database: Option<DatabaseUrl>) -> TgBridged {
    bridged_with(database, |_| {}).await
}

/// [`bridged`], with `adjust` applied to the bridge's config last.
pub async fn bridged_with(database: Option<DatabaseUrl>, adjust: impl FnOnce(&mut Config)) -> TgBridged {
    let started = Instant::now();
    let world = Dm3World::start(None).await;
    let api = BotApi::start().await;
    let (dir, config_file) = init_data_dir();
    let mut config = Config::load(&config_file, []).unwrap();
    world.configure_bridge(&mut config);
    config.admin.token = Some(AdminToken::new(ADMIN_TOKEN));
    config.database.url = database;
    let mut telegram = TelegramConfig::new(BotToken::new(TOKEN));
    telegram.api_url = Some(api.url.clone());
    telegram.poll_timeout_secs = 1;
    telegram.link_policy = LinkPolicy::Users { users: vec![ANN as u64, BEN as u64] };
    // Paced, but faster than Telegram's 1/s per chat: the scenarios send a hundred messages.
    telegram.rate_limits =
        RateLimits { per_chat_interval_ms: 10, global_per_second: 1000, max_wait_ms: 5000 };
    config.telegram = Some(telegram);
    adjust(&mut config);
    let bridge = bridge::start(config, dir, String::new).await;
    world.point_parent_at(&bridge).await;
    let directory = world.directory();
    eprintln!("set up in {:.1} s", started.elapsed().as_secs_f64());
    TgBridged { world, api, bridge, directory }
}

impl TgBridged {
    /// The messages alice holds from `from`, oldest first, once there are at least `count`.
    pub async fn alice_got(&self, from: &str, count: usize) -> Vec<Received> {
        let mut received = self.world.alice.wait_for(&self.world.ds_b, &self.directory, from, count).await;
        // The delivery service answers newest first; a messenger orders by the sender's time.
        received.reverse();
        received.sort_by(|a, b| a.message.timestamp().total_cmp(&b.message.timestamp()));
        received
    }

    /// `user` sends `/start`; the bot's welcome.
    pub async fn start(&self, user: i64) -> String {
        let before = self.api.sent_to(user).len();
        self.api.user_text(user, "/start");
        let answer = self.next_from_bot(user, before).await;
        assert!(answer.contains(&tg_name(user)), "{answer}");
        answer
    }

    /// The visible text of the bot's message number `index` (from 0) in `chat`, waiting for it.
    pub async fn next_from_bot(&self, chat: i64, index: usize) -> String {
        let sent = wait_for(&format!("message {index} of the bot in chat {chat}"), || {
            self.api.sent_to(chat).get(index).cloned()
        })
        .await;
        visible_text(&sent.text)
    }
}

/// Polls `check` for at most a minute (the engine, the chain and two nodes share a small
/// machine with other tests).
pub async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
