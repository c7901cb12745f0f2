//! Pacing sends below Telegram's limits, so a burst becomes a queue instead of a 429 storm.
//!
//! Telegram asks bots to stay under about one message per second per chat and 30 per second
//! overall, and answers 429 with `retry_after` beyond that (Telegram's Bots FAQ). The limiter
//! hands out send slots: each chat's next slot is one interval after its last, and the global
//! slots are spaced `1 / global_per_second` apart. A caller sleeps until its slot.
//!
//! A slot far away is not waited for: holding an engine worker for a minute helps nobody. Past
//! `max_wait_ms` the limiter answers [`ConnectorError::RetryAfter`] with the wait, and the
//! engine's outbox reschedules the job; other conversations keep running meanwhile. A 429 from
//! Telegram pushes the chat's next slot past its `retry_after`, so the other conversations of
//! the same chat (one bot chat, many DM3 contacts) do not hit the same wall.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use dm3_bridge_connector::ConnectorError;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Above this many chats, chats whose slot has passed are forgotten.
const PRUNE_ABOVE_CHATS: usize = 10_000;

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

/// The slots handed out so far.
pub struct RateLimiter {
    per_chat: Duration,
    global: Duration,
    max_wait: Duration,
    slots: Mutex<Slots>,
}

struct Slots {
    global_next: Instant,
    chat_next: HashMap<i64, Instant>,
}

impl RateLimiter {
    /// A limiter for `limits`.
    pub fn new(limits: &RateLimits) -> Self {
        Self {
            per_chat: Duration::from_millis(limits.per_chat_interval_ms),
            global: Duration::from_secs(1) / limits.global_per_second.max(1),
            max_wait: Duration::from_millis(limits.max_wait_ms),
            slots: Mutex::new(Slots { global_next: Instant::now(), chat_next: HashMap::new() }),
        }
    }

    /// Waits for a send slot in `chat`; answers "retry after" if the slot is too far away.
    pub async fn acquire(&self, chat: i64) -> Result<(), ConnectorError> {
        let at =
            self.reserve(chat, Some(self.max_wait)).map_err(|wait| ConnectorError::RetryAfter(Some(wait)))?;
        tokio::time::sleep_until(at).await;
        Ok(())
    }

    /// Waits for a send slot in `chat` however long it takes (the bot's own answers to commands,
    /// which have no queue to go back to).
    pub async fn acquire_waiting(&self, chat: i64) {
        if let Ok(at) = self.reserve(chat, None) {
            tokio::time::sleep_until(at).await;
        }
    }

    /// Telegram said 429 for `chat`: nothing more goes there before `retry_after` has passed.
    pub fn penalize(&self, chat: i64, retry_after: Duration) {
        let until = Instant::now() + retry_after;
        let mut slots = self.lock();
        let next = slots.chat_next.entry(chat).or_insert(until);
        *next = (*next).max(until);
    }

    /// Takes the next slot of `chat`, unless it is more than `max_wait` away (then the wait).
    fn reserve(&self, chat: i64, max_wait: Option<Duration>) -> Result<Instant, Duration> {
        let now = Instant::now();
        let mut slots = self.lock();
        let chat_next = slots.chat_next.get(&chat).copied().unwrap_or(now).max(now);
        let at = chat_next.max(slots.global_next);
        let wait = at - now;
        if max_wait.is_some_and(|max| wait > max) {
            return Err(wait);
        }
        slots.global_next = at + self.global;
        slots.chat_next.insert(chat, at + self.per_chat);
        if slots.chat_next.len() > PRUNE_ABOVE_CHATS {
            slots.chat_next.retain(|_, next| *next > now);
        }
        Ok(at)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        // The slots stay consistent even if a holder panicked: every update is one assignment.
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_chat_is_paced_and_a_far_slot_is_a_retry_after() {
        let limiter = RateLimiter::new(&RateLimits {
            per_chat_interval_ms: 1000,
            global_per_second: 30,
            max_wait_ms: 2500,
        });
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire(1).await.unwrap();
        }
        assert_eq!((Instant::now() - start).as_millis(), 2000);
        // The next slot is 1 s away; after two more reservations it would be 3 s away.
        let first = limiter.reserve(1, Some(Duration::from_millis(2500))).unwrap();
        let second = limiter.reserve(1, Some(Duration::from_millis(2500))).unwrap();
        assert_eq!(second - first, Duration::from_secs(1));
        match limiter.acquire(1).await {
            Err(ConnectorError::RetryAfter(Some(wait))) => assert_eq!(wait, Duration::from_secs(3)),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn chats_share_the_global_rate_and_429_pushes_a_chat_back() {
        let limiter = RateLimiter::new(&RateLimits {
            per_chat_interval_ms: 1000,
            global_per_second: 10,
            max_wait_ms: 60_000,
        });
        let start = Instant::now();
        for chat in 0..10 {
            limiter.acquire(chat).await.unwrap();
        }
        assert_eq!((Instant::now() - start).as_millis(), 900);
        limiter.penalize(42, Duration::from_secs(7));
        let before = Instant::now();
        limiter.acquire(42).await.unwrap();
        assert_eq!((Instant::now() - before).as_secs(), 7);
    }
}
