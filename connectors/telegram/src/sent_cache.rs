//! The sends this process completed, by idempotency key: the part of idempotency Telegram lacks.
//!
//! Telegram has no idempotency key: a `sendMessage` repeated is a message posted twice. The
//! engine retries a job whose outcome it did not record (its write failed, the worker's lease
//! ran out), and those retries usually reach the same process within seconds. This bounded
//! cache answers them with the message id of the first send instead of posting again.
//!
//! It cannot cover a crash between Telegram's answer and the engine's record, nor a request
//! whose answer was lost (a timeout after Telegram accepted it): that window, one request long,
//! is where a message can appear twice (docs/telegram.md, "Delivery guarantees").

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use dm3_bridge_connector::{IdempotencyKey, NetworkMessageId};
use tokio::time::Instant;

const CAPACITY: usize = 10_000;
const TTL: Duration = Duration::from_secs(3600);

/// Completed sends, at most [`CAPACITY`], each for at most [`TTL`].
#[derive(Default)]
pub(crate) struct SentCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sent: HashMap<IdempotencyKey, (NetworkMessageId, Instant)>,
    order: VecDeque<IdempotencyKey>,
}

impl SentCache {
    /// The message a send with `key` created, if this process made it lately.
    pub(crate) fn get(&self, key: &IdempotencyKey) -> Option<NetworkMessageId> {
        let inner = self.lock();
        inner.sent.get(key).filter(|(_, at)| at.elapsed() < TTL).map(|(id, _)| id.clone())
    }

    /// Remembers that the send with `key` created `id`.
    pub(crate) fn insert(&self, key: &IdempotencyKey, id: &NetworkMessageId) {
        let mut inner = self.lock();
        if inner.sent.insert(key.clone(), (id.clone(), Instant::now())).is_none() {
            inner.order.push_back(key.clone());
        }
        while inner.order.len() > CAPACITY {
            if let Some(oldest) = inner.order.pop_front() {
                inner.sent.remove(&oldest);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn remembers_bounded_and_for_a_while() {
        let cache = SentCache::default();
        let key = |i: usize| IdempotencyKey::new(format!("k{i}")).unwrap();
        let id = NetworkMessageId::new("1:2").unwrap();
        cache.insert(&key(0), &id);
        assert_eq!(cache.get(&key(0)), Some(id.clone()));
        for i in 1..=CAPACITY {
            cache.insert(&key(i), &id);
        }
        assert_eq!(cache.get(&key(0)), None, "the oldest is evicted past the capacity");
        assert!(cache.get(&key(1)).is_some());
        tokio::time::advance(TTL).await;
        assert_eq!(cache.get(&key(1)), None, "entries expire");
    }
}
