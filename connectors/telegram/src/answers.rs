//! The bot's own messages (answers to commands, refusals, notices), sent in their chat's turn
//! without holding up anything else.
//!
//! Handling an update must not wait for a send: with Telegram's pace of one message per second
//! per chat, one user's thirty `/start` would otherwise hold every other user's updates behind
//! thirty seconds (docs/telegram.md, "How the bot shares its send budget"). So
//! [`Answers::send`] takes the answer's place in its chat's queue at once, which keeps the
//! chat's order (two answers of one update, or an answer and a relayed message after it, arrive
//! in the order they were decided), and a task sends it when the turn comes.
//!
//! Answers are best effort, as they were when sent inline: they live in memory, so a crash loses
//! those not sent yet (never a message: messages are the engine's durable jobs). A 429 sends the
//! answer again after `retry_after`, before the chat's later sends, a few times; other failures
//! are logged. A chat holds at most [`MAX_WAITING_PER_CHAT`] queued sends; answers beyond that
//! are dropped with a warning, so a flood of commands cannot grow memory without bound.
//! Stopping gives the queued answers [`DRAIN`] to go out.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use teloxide_core::Bot;
use teloxide_core::payloads::SendMessageSetters as _;
use teloxide_core::prelude::Requester as _;
use teloxide_core::requests::Request as _;
use teloxide_core::types::{ChatId, ParseMode};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::errors::{classify, retry_after};
use crate::reply::reply_parameters;
use crate::send_queue::{Place, SendQueue, Ticket};

/// Most sends one chat may have queued before its answers are dropped.
pub(crate) const MAX_WAITING_PER_CHAT: usize = 100;
/// How often an answer is sent while Telegram answers 429.
const ATTEMPTS: u32 = 3;
/// How long stopping waits for queued answers.
pub(crate) const DRAIN: Duration = Duration::from_secs(3);

/// A message from the bot itself to a chat (HTML).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) chat: i64,
    pub(crate) html: String,
    pub(crate) reply_to: Option<i32>,
}

/// The answers on their way.
pub(crate) struct Answers {
    bot: Bot,
    queue: Arc<SendQueue>,
    tasks: TaskTracker,
    /// Cancels the answers still queued when stopping took too long; replaced after each stop.
    cancel: Mutex<CancellationToken>,
}

impl Answers {
    pub(crate) fn new(bot: Bot, queue: Arc<SendQueue>) -> Self {
        Self { bot, queue, tasks: TaskTracker::new(), cancel: Mutex::new(CancellationToken::new()) }
    }

    /// Queues `answer` in its chat and returns; a task sends it when the chat's turn comes.
    pub(crate) fn send(&self, answer: Answer) {
        if self.queue.waiting(answer.chat) >= MAX_WAITING_PER_CHAT {
            tracing::warn!(
                chat = answer.chat,
                "the chat has {MAX_WAITING_PER_CHAT} sends queued; the bot's answer is dropped"
            );
            return;
        }
        let ticket = self.queue.enqueue(answer.chat, Place::Last);
        let cancel = self.cancel.lock().unwrap_or_else(PoisonError::into_inner).clone();
        self.tasks.spawn(deliver(self.bot.clone(), self.queue.clone(), ticket, answer, cancel));
    }

    /// Waits up to [`DRAIN`] for the queued answers to go out, then drops the rest.
    pub(crate) async fn drain(&self) {
        self.tasks.close();
        if tokio::time::timeout(DRAIN, self.tasks.wait()).await.is_err() {
            let left = self.tasks.len();
            tracing::warn!(left, "stopping: the bot's answers still queued are not sent");
            let fresh = CancellationToken::new();
            std::mem::replace(&mut *self.cancel.lock().unwrap_or_else(PoisonError::into_inner), fresh)
                .cancel();
            self.tasks.wait().await;
        }
        self.tasks.reopen();
    }
}

/// Sends `answer` in its turn; again, in front of the chat's queue, after a 429.
async fn deliver(bot: Bot, queue: Arc<SendQueue>, first: Ticket, answer: Answer, cancel: CancellationToken) {
    let chat = answer.chat;
    let mut ticket = first;
    for attempt in 1..=ATTEMPTS {
        let turn = tokio::select! {
            turn = ticket.turn() => turn,
            () = cancel.cancelled() => return,
        };
        let Some(turn) = turn else { return };
        let mut request = bot.send_message(ChatId(chat), answer.html.clone()).parse_mode(ParseMode::Html);
        if let Some(target) = answer.reply_to {
            request = request.reply_parameters(reply_parameters(target));
        }
        let error = match request.send().await {
            Ok(_) => return,
            Err(error) => error,
        };
        if let Some(wait) = retry_after(&error) {
            queue.penalize(chat, wait);
            if attempt < ATTEMPTS {
                // The place is taken before the turn ends, so nothing of the chat slips ahead.
                ticket = queue.enqueue(chat, Place::First);
                drop(turn);
                continue;
            }
        }
        tracing::warn!(chat, error = %classify(error), "the bot's answer was not sent");
        return;
    }
}
