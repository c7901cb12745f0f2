//! One update per chat at a time, and whether an update came back after a later one.
//!
//! Updates of different chats are independent, so they are handled side by side: one user's
//! slow name lookup or flood of commands holds up no one else. A chat's own updates must be
//! handled one at a time and in order (a `/to` before the message it routes), so
//! [`ChatOrder::begin`] waits until the chat's previous update is done.
//!
//! It also tells whether an update is **older than the newest** this process saw for its chat.
//! Telegram numbers updates in increasing order, so such an update is being served again (a
//! webhook retried after its answer was lost, a server that re-serves what was confirmed). The
//! engine will call its batch a duplicate, but only after planning, and planning a replayed
//! `/to` after a later `/to` would set the old contact again; so the update handler skips the
//! state changes of a replayed update ([`ChatTurn::replayed`]). This memory is a cache: after a
//! restart it is empty, and Telegram re-serves what was not confirmed in order, from the first
//! unconfirmed update on, so running those state changes again, in order, ends in the same
//! state. An entry is kept for a day (Telegram keeps an update about that long), for at most
//! [`MAX_CHATS`] chats; Telegram restarts its numbering at random only after a week without
//! updates, long after.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

/// How long the newest update of a chat is remembered.
const REMEMBER: Duration = Duration::from_secs(24 * 3600);
/// Most chats whose newest update is remembered.
const MAX_CHATS: usize = 100_000;

/// The chats being handled, and the newest update of each.
#[derive(Default)]
pub(crate) struct ChatOrder {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// One lock per chat with an update being handled or waiting.
    locks: HashMap<i64, Arc<tokio::sync::Mutex<()>>>,
    /// The newest update id seen per chat, and when.
    newest: HashMap<i64, (u32, Instant)>,
}

/// The right to handle an update of a chat; the chat's next update waits until it is dropped.
pub(crate) struct ChatTurn<'a> {
    order: &'a ChatOrder,
    chat: Option<i64>,
    guard: Option<OwnedMutexGuard<()>>,
    replayed: bool,
}

impl ChatTurn<'_> {
    /// Whether the update is older than one this process already handled for the chat.
    pub(crate) fn replayed(&self) -> bool {
        self.replayed
    }
}

impl Drop for ChatTurn<'_> {
    fn drop(&mut self) {
        let Some(chat) = self.chat else { return };
        drop(self.guard.take());
        let mut inner = self.order.lock();
        // Nobody else holds or waits for the lock (the map's is the only handle): forget it.
        if inner.locks.get(&chat).is_some_and(|lock| Arc::strong_count(lock) == 1) {
            inner.locks.remove(&chat);
        }
    }
}

impl ChatOrder {
    /// Waits until `chat` has no update being handled, then takes its turn for `update_id`.
    /// An update of no chat (a kind the bridge ignores) waits for nothing.
    pub(crate) async fn begin(&self, chat: Option<i64>, update_id: u32) -> ChatTurn<'_> {
        let Some(chat_id) = chat else {
            return ChatTurn { order: self, chat, guard: None, replayed: false };
        };
        // Made first, so that the map entry is cleaned up even if this future is dropped while
        // it waits (the turn is dropped after the lock's handle).
        let mut turn = ChatTurn { order: self, chat, guard: None, replayed: false };
        let lock = self.lock().locks.entry(chat_id).or_default().clone();
        turn.guard = Some(lock.lock_owned().await);
        turn.replayed = self.saw_newer(chat_id, update_id);
        turn
    }

    /// Whether a newer update than `update_id` was seen for `chat`; remembers `update_id` as
    /// the newest otherwise. An update seen again as the newest (its handling failed and is
    /// retried) is not a replay.
    fn saw_newer(&self, chat: i64, update_id: u32) -> bool {
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some(&(newest, at)) = inner.newest.get(&chat)
            && now.duration_since(at) < REMEMBER
            && newest > update_id
        {
            return true;
        }
        inner.newest.insert(chat, (update_id, now));
        if inner.newest.len() > MAX_CHATS {
            inner.newest.retain(|_, (_, at)| now.duration_since(*at) < REMEMBER);
        }
        if inner.newest.len() > MAX_CHATS {
            // All recent: forget the least recent half (a cache; see the module doc).
            let mut times: Vec<Instant> = inner.newest.values().map(|(_, at)| *at).collect();
            times.sort_unstable();
            let cut = times[times.len() / 2];
            inner.newest.retain(|_, (_, at)| *at > cut);
        }
        false
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Each update of the maps is complete before the lock is released.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[tokio::test]
    async fn an_older_update_of_a_chat_is_a_replay_and_the_newest_again_is_not() {
        let order = ChatOrder::default();
        assert!(!order.begin(Some(1), 100).await.replayed());
        assert!(!order.begin(Some(1), 101).await.replayed());
        assert!(order.begin(Some(1), 100).await.replayed(), "100 after 101");
        assert!(!order.begin(Some(1), 101).await.replayed(), "101 retried");
        assert!(!order.begin(Some(2), 50).await.replayed(), "chats are apart");
        assert!(!order.begin(None, 1).await.replayed());
        assert!(order.lock().locks.is_empty(), "no lock is kept for an idle chat");
    }

    #[tokio::test(start_paused = true)]
    async fn a_chat_waits_for_its_previous_update_and_others_do_not() {
        let order = Arc::new(ChatOrder::default());
        let first = order.begin(Some(1), 1).await;
        let waiting = {
            let order = order.clone();
            tokio::spawn(async move {
                let _turn = order.begin(Some(1), 2).await;
                Instant::now()
            })
        };
        let other = tokio::time::timeout(Duration::from_millis(10), order.begin(Some(2), 3)).await;
        assert!(other.is_ok(), "another chat goes at once");
        drop(other);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let released = Instant::now();
        drop(first);
        assert!(waiting.await.unwrap() >= released);
    }

    #[tokio::test(start_paused = true)]
    async fn a_replay_is_forgotten_after_a_day() {
        let order = ChatOrder::default();
        drop(order.begin(Some(1), 500).await);
        tokio::time::advance(REMEMBER).await;
        assert!(!order.begin(Some(1), 7).await.replayed(), "numbering restarted");
    }
}
