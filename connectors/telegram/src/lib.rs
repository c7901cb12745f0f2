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
//! - [`connector`]: [`TelegramConnector`], start/stop and capabilities; `outbound`, `media`
//!   and [`native`] (bridge payloads): sending, with [`rate_limit`], `errors` (429 → retry after) and `sent_cache`;
//! - receiving: `poller` (long polling) or [`webhook`], both through `handler`, which turns
//!   updates into inbound batches, with `commands`, [`content`] and `reactions`;
//! - [`mod@format`], [`html`], [`entities`]: text both ways (Telegram entities → markdown; neutral
//!   HTML → Telegram's HTML subset, with the sender's name);
//! - [`ids`], [`deep_link`]: the ids, and DM3 names in `t.me/<bot>?start=` links;
//! - [`state`]: the traits the service implements.

mod commands;
pub mod config;
pub mod connector;
pub mod content;
pub mod deep_link;
pub mod entities;
mod errors;
pub mod format;
mod handler;
pub mod html;
pub mod ids;
mod media;
pub mod native;
mod outbound;
mod poller;
pub mod rate_limit;
mod reactions;
pub mod secret;
mod sent_cache;
pub mod state;
pub mod webhook;

pub use config::{ConfigProblem, LinkPolicy, ReceiveMode, TelegramConfig, WebhookConfig};
pub use connector::{TelegramConnector, TelegramError};
pub use format::SenderFormat;
pub use rate_limit::RateLimits;
pub use secret::{BotToken, WebhookSecret};
pub use state::{ChatState, StateError, TelegramAccounts, TelegramUser};
