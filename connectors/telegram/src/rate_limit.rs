//! `[telegram.rate_limits]`: the pace the bot keeps below Telegram's limits.
//!
//! Telegram asks bots to stay under about one message per second per chat and 30 per second
//! overall, and answers 429 with `retry_after` beyond that (Telegram's Bots FAQ). These are the
//! operator's numbers; `send_queue` keeps them, sharing the global budget among chats.

use serde::{Deserialize, Serialize};

/// `[telegram.rate_limits]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// Time between two sends into one chat.
    pub per_chat_interval_ms: u64,
    /// Sends per second over all chats.
    pub global_per_second: u32,
    /// Longest wait for a slot before answering "retry after" instead.
    pub max_wait_ms: u64,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self { per_chat_interval_ms: 1000, global_per_second: 30, max_wait_ms: 5000 }
    }
}

impl RateLimits {
    /// What is wrong with the limits, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.global_per_second == 0 {
            return Some("global_per_second must be at least 1".to_owned());
        }
        if self.per_chat_interval_ms > 60_000 || self.max_wait_ms > 600_000 {
            return Some(
                "per_chat_interval_ms must be at most 60000 and max_wait_ms at most 600000".to_owned(),
            );
        }
        None
    }
}
