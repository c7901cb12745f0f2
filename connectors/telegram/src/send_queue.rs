//! The bot's sends, queued per chat and sharing Telegram's budget fairly among chats.
//!
//! Telegram asks bots to stay under about one message per second per chat and 30 per second
//! overall, and answers 429 with `retry_after` beyond that (Telegram's Bots FAQ). Every send of
//! the connector (relayed messages, edits, reactions, deletes, and the bot's own answers) first
//! waits here for its [`Turn`]:
//! - **In order within a chat.** A chat's sends take turns in the order they asked, one at a
//!   time: the next starts after the previous one finished and one interval after it started.
//!   So messages keep their order in the chat, and the chat stays under its limit.
//! - **Round-robin among chats.** Chats with sends waiting form a ring; each round gives every
//!   chat whose interval has passed one send, and the global budget spaces turns
//!   `1 / global_per_second` apart. Each send costs Telegram's budget the same (one message),
//!   so this is deficit scheduling with equal costs: a chat with a backlog of a hundred gets
//!   its share and no more, and another chat's send waits at most one round, never behind that
//!   backlog (docs/telegram.md, "How the bot shares its send budget").
//! - **429 means later.** [`SendQueue::penalize`] pushes the chat's next turn past Telegram's
//!   `retry_after`, so the chat's other sends (one bot chat carries several DM3 contacts) do not
//!   hit the same wall.
//! - **A far turn is handed back.** Holding an engine worker for a minute helps nobody: a send
//!   that would wait longer than `max_wait_ms` gets [`ConnectorError::RetryAfter`] at once, with
//!   the expected wait, and the engine's outbox reschedules its job (it is durable there). The
//!   bot's own answers have no queue to go back to; they take a place however far
//!   ([`SendQueue::enqueue`]).
//!
//! One task hands out the turns while sends wait, and ends when none do. Only chats with sends
//! waiting or an interval still running are kept, so memory follows the chats active in the
//! last interval.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dm3_bridge_connector::ConnectorError;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::rate_limit::RateLimits;

/// Above this many chats, chats with nothing waiting and their interval passed are forgotten.
const PRUNE_ABOVE_CHATS: usize = 10_000;

/// The queues of all chats, and the turns handed out.
pub(crate) struct SendQueue {
    per_chat: Duration,
    global: Duration,
    max_wait: Duration,
    state: Mutex<State>,
    /// Wakes the task handing out turns: a send queued, a turn ended, a chat penalized.
    wake: Notify,
}

struct State {
    /// The earliest time of the next turn of any chat.
    global_next: Instant,
    chats: HashMap<i64, Chat>,
    /// Chats with sends waiting, in the order of their next turn (each once).
    ring: VecDeque<i64>,
    /// Whether the task handing out turns runs.
    dispatching: bool,
}

struct Chat {
    /// The earliest time of this chat's next turn.
    next: Instant,
    /// A turn of this chat is under way.
    busy: bool,
    waiting: VecDeque<oneshot::Sender<Turn>>,
}

/// Where a send takes its place in its chat's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// After everything queued: a new send.
    Last,
    /// Before everything queued: a send retried after a 429 keeps its place in the chat's order.
    First,
}

/// A place in a chat's queue.
pub(crate) struct Ticket {
    granted: oneshot::Receiver<Turn>,
}

impl Ticket {
    /// Waits for the turn; `None` only if the queue was dropped meanwhile.
    pub(crate) async fn turn(self) -> Option<Turn> {
        self.granted.await.ok()
    }
}

/// The right to send to a chat now. The chat's next send waits until this is dropped.
#[must_use = "the chat's next send waits until the turn is dropped"]
pub(crate) struct Turn {
    queue: Arc<SendQueue>,
    chat: i64,
    /// Whether dropping it ends a turn (a turn handed to a waiter who had left is not one).
    armed: bool,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let now = Instant::now();
        let mut state = self.queue.lock();
        if let Some(chat) = state.chats.get_mut(&self.chat) {
            chat.busy = false;
            if chat.waiting.is_empty() && chat.next <= now {
                state.chats.remove(&self.chat);
            }
        }
        if state.chats.len() > PRUNE_ABOVE_CHATS {
            state.chats.retain(|_, chat| chat.busy || !chat.waiting.is_empty() || chat.next > now);
        }
        drop(state);
        self.queue.wake.notify_one();
    }
}

/// What the task handing out turns does next.
enum Next {
    /// Nothing waits: it ends.
    Idle,
    /// Sleep until then, or until woken.
    At(Instant),
    /// Every waiting chat has a send under way: sleep until woken.
    Woken,
}

impl SendQueue {
    /// A queue under `limits`.
    pub(crate) fn new(limits: &RateLimits) -> Arc<Self> {
        Arc::new(Self {
            per_chat: Duration::from_millis(limits.per_chat_interval_ms),
            global: Duration::from_secs(1) / limits.global_per_second.max(1),
            max_wait: Duration::from_millis(limits.max_wait_ms),
            state: Mutex::new(State {
                global_next: Instant::now(),
                chats: HashMap::new(),
                ring: VecDeque::new(),
                dispatching: false,
            }),
            wake: Notify::new(),
        })
    }

    /// Waits for a turn to send to `chat`, or answers "retry after" with the expected wait if
    /// that is longer than `max_wait_ms` (for the engine's sends, which its outbox retries).
    pub(crate) async fn turn(self: &Arc<Self>, chat: i64) -> Result<Turn, ConnectorError> {
        let ticket = self
            .take_place(chat, Place::Last, Some(self.max_wait))
            .map_err(|wait| ConnectorError::RetryAfter(Some(wait)))?;
        match tokio::time::timeout(self.max_wait, ticket.turn()).await {
            Ok(Some(turn)) => Ok(turn),
            Ok(None) => Err(ConnectorError::Transient("the send queue was shut down".to_owned())),
            // Other chats took the budget longer than foreseen; the place is given up (the
            // queue skips it) and the engine tries again after an interval.
            Err(_) => Err(ConnectorError::RetryAfter(Some(self.per_chat.max(self.global)))),
        }
    }

    /// Takes a place in `chat`'s queue however far the turn is (the bot's answers). The place
    /// is taken now, so sends queued one after the other keep their order.
    pub(crate) fn enqueue(self: &Arc<Self>, chat: i64, place: Place) -> Ticket {
        match self.take_place(chat, place, None) {
            Ok(ticket) => ticket,
            // Unreachable without a limit; a ticket that never turns would only lose an answer.
            Err(_) => Ticket { granted: oneshot::channel().1 },
        }
    }

    /// Telegram said 429 for `chat`: nothing more goes there before `retry_after` has passed.
    pub(crate) fn penalize(&self, chat: i64, retry_after: Duration) {
        let until = Instant::now() + retry_after;
        let mut state = self.lock();
        let entry = state.chats.entry(chat).or_insert_with(|| Chat::idle(until));
        entry.next = entry.next.max(until);
        drop(state);
        self.wake.notify_one();
    }

    /// How many sends wait in `chat`'s queue.
    pub(crate) fn waiting(&self, chat: i64) -> usize {
        self.lock().chats.get(&chat).map_or(0, |c| open(&c.waiting))
    }

    /// Queues a send to `chat`, unless its turn is further than `max_wait` (then the wait).
    fn take_place(
        self: &Arc<Self>,
        chat: i64,
        place: Place,
        max_wait: Option<Duration>,
    ) -> Result<Ticket, Duration> {
        let now = Instant::now();
        let (sender, receiver) = oneshot::channel();
        let mut state = self.lock();
        let global_next = state.global_next;
        let entry = state.chats.entry(chat).or_insert_with(|| Chat::idle(now));
        if entry.waiting.is_empty() && !entry.busy && entry.next <= now && global_next <= now {
            // Free now: no need to wait for the task that hands out turns.
            entry.busy = true;
            entry.next = now + self.per_chat;
            state.global_next = now + self.global;
            let turn = Turn { queue: self.clone(), chat, armed: true };
            // The receiver is in hand, so this cannot fail.
            let _ = sender.send(turn);
            return Ok(Ticket { granted: receiver });
        }
        if let Some(max_wait) = max_wait {
            // The sends waiting ahead each take an interval after the chat's next turn.
            let ahead = u32::try_from(open(&entry.waiting)).unwrap_or(u32::MAX);
            let at = entry.next.max(global_next).max(now) + self.per_chat.saturating_mul(ahead);
            let wait = at - now;
            if wait > max_wait {
                return Err(wait);
            }
        }
        let was_waiting = !entry.waiting.is_empty();
        match place {
            Place::Last => entry.waiting.push_back(sender),
            Place::First => entry.waiting.push_front(sender),
        }
        if !was_waiting {
            state.ring.push_back(chat);
        }
        if state.dispatching {
            drop(state);
            self.wake.notify_one();
        } else {
            state.dispatching = true;
            drop(state);
            tokio::spawn(dispatch(self.clone()));
        }
        Ok(Ticket { granted: receiver })
    }

    /// Hands out every turn that is due, round-robin over the waiting chats; says when to look
    /// again.
    fn grant_due(self: &Arc<Self>, state: &mut State) -> Next {
        loop {
            let now = Instant::now();
            if state.ring.is_empty() {
                return Next::Idle;
            }
            if state.global_next > now {
                return Next::At(state.global_next);
            }
            let (chat_id, earliest) = next_ready(state, now);
            let Some(chat_id) = chat_id else {
                return earliest.map_or(Next::Woken, Next::At);
            };
            let Some(chat) = state.chats.get_mut(&chat_id) else { continue };
            let Some(waiter) = chat.waiting.pop_front() else { continue };
            match waiter.send(Turn { queue: self.clone(), chat: chat_id, armed: true }) {
                Ok(()) => {
                    chat.busy = true;
                    chat.next = now + self.per_chat;
                    state.global_next = state.global_next.max(now) + self.global;
                }
                // The waiter left in the meantime (gave up, or its task ended); its successor
                // is next. The turn was never taken, so it ends nothing.
                Err(mut turn) => turn.armed = false,
            }
            let more = state.chats.get(&chat_id).is_some_and(|c| !c.waiting.is_empty());
            if more {
                state.ring.push_back(chat_id);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of the state is complete before the lock is released, and nothing in
        // it panics; a poisoned lock still holds consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Chat {
    fn idle(next: Instant) -> Self {
        Self { next, busy: false, waiting: VecDeque::new() }
    }
}

/// The waiters that have not left.
fn open(waiting: &VecDeque<oneshot::Sender<Turn>>) -> usize {
    waiting.iter().filter(|w| !w.is_closed()).count()
}

/// The first chat of the ring whose turn is due, taken out of the ring (the chats before it go
/// to the back, in order), or else the earliest time one will be. Chats whose waiters all left
/// leave the ring.
fn next_ready(state: &mut State, now: Instant) -> (Option<i64>, Option<Instant>) {
    let mut earliest: Option<Instant> = None;
    for _ in 0..state.ring.len() {
        let Some(chat_id) = state.ring.pop_front() else { break };
        let Some(chat) = state.chats.get_mut(&chat_id) else { continue };
        while chat.waiting.front().is_some_and(oneshot::Sender::is_closed) {
            chat.waiting.pop_front();
        }
        if chat.waiting.is_empty() {
            continue;
        }
        if !chat.busy {
            if chat.next <= now {
                return (Some(chat_id), None);
            }
            earliest = Some(earliest.map_or(chat.next, |e| e.min(chat.next)));
        }
        state.ring.push_back(chat_id);
    }
    (None, earliest)
}

/// Hands out turns while sends wait.
async fn dispatch(queue: Arc<SendQueue>) {
    loop {
        // Created before looking, so a wake-up between the look and the sleep is not lost.
        let woken = queue.wake.notified();
        let next = {
            let mut state = queue.lock();
            let next = queue.grant_due(&mut state);
            if matches!(next, Next::Idle) {
                state.dispatching = false;
            }
            next
        };
        match next {
            Next::Idle => return,
            Next::At(at) => {
                tokio::select! {
                    () = woken => {}
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            Next::Woken => woken.await,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn queue(per_chat_interval_ms: u64, global_per_second: u32, max_wait_ms: u64) -> Arc<SendQueue> {
        SendQueue::new(&RateLimits { per_chat_interval_ms, global_per_second, max_wait_ms })
    }

    #[tokio::test(start_paused = true)]
    async fn one_chat_is_paced_and_a_far_turn_is_a_retry_after() {
        let queue = queue(1000, 30, 2500);
        let start = Instant::now();
        for _ in 0..3 {
            drop(queue.turn(1).await.unwrap());
        }
        assert_eq!((Instant::now() - start).as_millis(), 2000);
        // The next turn is 1 s away; with two sends queued before it, it would be 3 s away.
        let first = queue.enqueue(1, Place::Last);
        let second = queue.enqueue(1, Place::Last);
        match queue.turn(1).await {
            Err(ConnectorError::RetryAfter(Some(wait))) => assert_eq!(wait, Duration::from_secs(3)),
            other => panic!("{:?}", other.err()),
        }
        drop(first.turn().await.unwrap());
        assert_eq!((Instant::now() - start).as_millis(), 3000);
        drop(second.turn().await.unwrap());
        assert_eq!((Instant::now() - start).as_millis(), 4000);
    }

    #[tokio::test(start_paused = true)]
    async fn chats_share_the_global_rate_and_429_pushes_a_chat_back() {
        let queue = queue(1000, 10, 60_000);
        let start = Instant::now();
        for chat in 0..10 {
            drop(queue.turn(chat).await.unwrap());
        }
        assert_eq!((Instant::now() - start).as_millis(), 900);
        queue.penalize(42, Duration::from_secs(7));
        let before = Instant::now();
        drop(queue.turn(42).await.unwrap());
        assert_eq!((Instant::now() - before).as_secs(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn a_chat_sends_one_at_a_time_in_the_order_asked() {
        let queue = queue(0, 1000, 5000);
        let first = queue.turn(5).await.unwrap();
        let second = queue.enqueue(5, Place::Last);
        let retried = queue.enqueue(5, Place::First);
        let (order, mut seen) = tokio::sync::mpsc::unbounded_channel();
        for (name, ticket) in [("second", second), ("retried", retried)] {
            let order = order.clone();
            tokio::spawn(async move {
                let _turn = ticket.turn().await.unwrap();
                order.send(name).unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(seen.try_recv().is_err(), "nothing goes while a send of the chat is under way");
        drop(first);
        assert_eq!(seen.recv().await, Some("retried"));
        assert_eq!(seen.recv().await, Some("second"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_in_one_chat_does_not_hold_up_another() {
        // One chat queued forty sends; the budget is 10 a second over all chats.
        let queue = queue(0, 10, 60_000);
        let backlog: Vec<Ticket> = (0..40).map(|_| queue.enqueue(1, Place::Last)).collect();
        let start = Instant::now();
        let backlog = tokio::spawn(async move {
            for ticket in backlog {
                drop(ticket.turn().await.unwrap());
            }
            Instant::now()
        });
        tokio::time::sleep(Duration::from_millis(250)).await;
        let asked = Instant::now();
        drop(queue.turn(2).await.unwrap());
        // Round-robin: chat 2 gets the next turn after the one under way, not the 38th.
        assert!(Instant::now() - asked <= Duration::from_millis(200), "{:?}", Instant::now() - asked);
        let done = backlog.await.unwrap();
        assert!(done - start >= Duration::from_millis(4000), "the backlog kept the global rate");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_gave_up_does_not_block_the_chat() {
        let queue = queue(1000, 1000, 5000);
        drop(queue.turn(3).await.unwrap());
        let gone = queue.enqueue(3, Place::Last);
        drop(gone);
        let before = Instant::now();
        drop(queue.turn(3).await.unwrap());
        assert_eq!((Instant::now() - before).as_millis(), 1000);
        assert_eq!(queue.waiting(3), 0);
    }
}
