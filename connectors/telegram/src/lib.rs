//! The Telegram connector of dm3-bridge: a Bot API bot whose private chats carry DM3 conversations.
//!
//! A Telegram bot cannot act as many users the way a Matrix application service can, so the
//! bridge is one bot, and each Telegram user's private chat with it multiplexes their DM3
//! contacts: the user picks whom they write to (`/to alice.eth`), replies to a relayed message to
//! answer its sender, and sees every relayed message with its sender's name in front. A
//! conversation is therefore `<chat id>/<DM3 name>` ([`ids`]).
//!
//! The crate holds the Telegram side and nothing else: no database (the service implements
//! [`ChatState`] and [`TelegramAccounts`] and hands in the engine's
//! [`dm3_bridge_connector::InboundSink`]), no DM3 (a DM3 name is an opaque
//! [`dm3_bridge_connector::RemoteIdentity`]). It speaks the Bot API through `teloxide-core` with
//! rustls, and runs its own update loop rather than teloxide's dispatcher, because an update may
//! be confirmed to Telegram only after the engine stored it.
//!
//! - [`config`], [`secret`]: the `[telegram]` section; the token and webhook secret, unloggable;
//! - [`connector`]: [`TelegramConnector`], start/stop, health and capabilities; `outbound`,
//!   `media` and [`native`] (bridge payloads): sending, each send in its chat's turn of the
//!   `send_queue` (under [`rate_limit`]), with `errors` (429 → retry after) and `sent_cache`;
//! - receiving: `poller` (long polling, kept running by `supervisor`, its state in `health`,
//!   in this process's [`turn`] when several share the bot) or
//!   [`webhook`], both
//!   reading raw updates through `updates` and handing them to `handler`, which turns them into
//!   inbound batches, one update per chat at a time (`chat_order`), with `commands`,
//!   [`content`] and `reactions`; the bot's answers go out through `answers`;
//! - [`mod@format`], [`html`], [`entities`]: text both ways (Telegram entities → markdown; neutral
//!   HTML → Telegram's HTML subset, with the sender's name);
//! - [`ids`], [`deep_link`]: the ids, and DM3 names in `t.me/<bot>?start=` links;
//! - [`state`]: the traits the service implements.

mod answers;
mod chat_order;
mod commands;
pub mod config;
pub mod connector;
pub mod content;
pub mod deep_link;
pub mod entities;
mod errors;
pub mod format;
mod handler;
mod health;
pub mod html;
pub mod ids;
mod media;
pub mod native;
mod outbound;
mod poller;
pub mod rate_limit;
mod reactions;
mod reply;
pub mod secret;
mod send_queue;
mod sent_cache;
pub mod state;
mod supervisor;
pub mod turn;
mod updates;
pub mod webhook;

pub use config::{ConfigProblem, LinkPolicy, ReceiveMode, TelegramConfig, WebhookConfig};
pub use connector::{TelegramConnector, TelegramError};
pub use format::SenderFormat;
pub use rate_limit::RateLimits;
pub use secret::{BotToken, WebhookSecret};
pub use state::{AppliedUpdate, ChatState, ClaimReply, StateError, TelegramAccounts, TelegramUser};
pub use turn::{PollingTurn, Turn};
