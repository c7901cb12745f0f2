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
//! state changes of a replayed update ([`ChatTurn::replayed`]). This memory is a cache of what
//! the service keeps durably (`ChatState::applied_update`, the newest update of each chat whose
//! state changes were made): the first update of a chat this process sees is compared with
//! that record ([`ChatOrder::begin`]'s `recall`), so an old update served again after a restart
//! is still a replay. An entry is kept for a day (Telegram keeps an update about that long), for
//! at most [`MAX_CHATS`] chats; Telegram restarts its numbering at random only after a week
//! without updates, long after.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

/// How long the newest update of a chat is remembered, here and in the service's record.
pub(crate) const REMEMBER: Duration = Duration::from_secs(24 * 3600);
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
    ///
    /// `recall` answers the service's record of the chat's newest update whose state changes
    /// were made within [`REMEMBER`]; it runs only when this process remembers no update of the
    /// chat (the first since a start). Its error is the caller's: nothing is remembered then,
    /// so the update's next try recalls again.
    pub(crate) async fn begin<E>(
        &self,
        chat: Option<i64>,
        update_id: u32,
        recall: impl Future<Output = Result<Option<u32>, E>>,
    ) -> Result<ChatTurn<'_>, E> {
        let Some(chat_id) = chat else {
            return Ok(ChatTurn { order: self, chat, guard: None, replayed: false });
        };
        // Made first, so that the map entry is cleaned up even if this future is dropped while
        // it waits (the turn is dropped after the lock's handle).
        let mut turn = ChatTurn { order: self, chat, guard: None, replayed: false };
        let lock = self.lock().locks.entry(chat_id).or_default().clone();
        turn.guard = Some(lock.lock_owned().await);
        let newest = match self.remembered(chat_id) {
            Some(newest) => Some(newest),
            None => recall.await?,
        };
        turn.replayed = self.saw_newer(chat_id, update_id, newest);
        Ok(turn)
    }

    /// The newest update of `chat` this process remembers, if within [`REMEMBER`].
    fn remembered(&self, chat: i64) -> Option<u32> {
        let now = Instant::now();
        let inner = self.lock();
        inner.newest.get(&chat).filter(|(_, at)| now.duration_since(*at) < REMEMBER).map(|(id, _)| *id)
    }

    /// Whether `newest` (the newest update known for `chat`) is newer than `update_id`;
    /// remembers the newer of the two. An update seen again as the newest (its handling failed
    /// and is retried) is not a replay.
    fn saw_newer(&self, chat: i64, update_id: u32, newest: Option<u32>) -> bool {
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some(newest) = newest
            && newest > update_id
        {
            inner.newest.insert(chat, (newest, now));
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

    /// Nothing recalled from the service: this process's memory alone.
    async fn nothing() -> Result<Option<u32>, ()> {
        Ok(None)
    }

    async fn begin(order: &ChatOrder, chat: Option<i64>, update_id: u32) -> ChatTurn<'_> {
        order.begin(chat, update_id, nothing()).await.unwrap()
    }

    #[tokio::test]
    async fn an_older_update_of_a_chat_is_a_replay_and_the_newest_again_is_not() {
        let order = ChatOrder::default();
        assert!(!begin(&order, Some(1), 100).await.replayed());
        assert!(!begin(&order, Some(1), 101).await.replayed());
        assert!(begin(&order, Some(1), 100).await.replayed(), "100 after 101");
        assert!(!begin(&order, Some(1), 101).await.replayed(), "101 retried");
        assert!(!begin(&order, Some(2), 50).await.replayed(), "chats are apart");
        assert!(!begin(&order, None, 1).await.replayed());
        assert!(order.lock().locks.is_empty(), "no lock is kept for an idle chat");
    }

    #[tokio::test]
    async fn after_a_restart_the_services_record_tells_a_replay() {
        let order = ChatOrder::default();
        let recalled = |newest: u32| async move { Ok::<_, ()>(Some(newest)) };
        assert!(order.begin(Some(1), 100, recalled(101)).await.unwrap().replayed(), "100 after 101");
        // Remembered now: the record is not asked again, and 101 stays the newest.
        let asked = std::sync::atomic::AtomicBool::new(false);
        let asking = async {
            asked.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, ()>(None)
        };
        assert!(order.begin(Some(1), 100, asking).await.unwrap().replayed());
        assert!(!asked.load(std::sync::atomic::Ordering::SeqCst), "remembered, not recalled");
        assert!(!begin(&order, Some(1), 102).await.replayed());
        // A failed recall remembers nothing: the update's next try recalls again.
        let failed = async { Err::<Option<u32>, _>("database down") };
        assert_eq!(order.begin(Some(2), 7, failed).await.err(), Some("database down"));
        assert!(order.begin(Some(2), 7, recalled(8)).await.unwrap().replayed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_chat_waits_for_its_previous_update_and_others_do_not() {
        let order = Arc::new(ChatOrder::default());
        let first = begin(&order, Some(1), 1).await;
        let waiting = {
            let order = order.clone();
            tokio::spawn(async move {
                let _turn = begin(&order, Some(1), 2).await;
                Instant::now()
            })
        };
        let other = tokio::time::timeout(Duration::from_millis(10), begin(&order, Some(2), 3)).await;
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
        drop(begin(&order, Some(1), 500).await);
        tokio::time::advance(REMEMBER).await;
        assert!(!begin(&order, Some(1), 7).await.replayed(), "numbering restarted");
    }
}
