//! Long polling: `getUpdates` in a loop, confirming updates only after they were handled.
//!
//! Telegram keeps an update until a `getUpdates` call asks for an `offset` past its id, so the
//! offset is the acknowledgement. It moves past a batch only after every update in it was
//! handled ([`UpdateHandler::handle`] returned `Ok`: the engine stored the batch); an update
//! whose handling failed is retried in place, with backoff, before any later update of its
//! chat, so nothing is skipped and each chat's order holds. If the process dies, Telegram
//! serves the unconfirmed updates again and the sink answers `Duplicate` for those it stored.
//!
//! Within a batch, the updates of different chats are handled side by side, each chat's in
//! order: one chat's slow update (a name lookup, a retry) does not hold up the others.
//!
//! Updates are fetched as raw JSON and read one at a time ([`crate::updates`]): an update
//! teloxide cannot read, or would panic on, is logged, confirmed with the rest of its batch and
//! skipped, and the good updates around it are handled. (Read as one typed list, a single bad
//! update would fail the whole answer, every time it is served.)
//!
//! Stopping confirms what was handled with one last `getUpdates(offset, timeout = 0)`, so a
//! clean restart re-serves nothing. The loop runs under [`crate::supervisor`], which restarts
//! it if it ends any other way.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use teloxide_core::ApiError;
use teloxide_core::Bot;
use teloxide_core::RequestError;
use teloxide_core::requests::{JsonRequest, Payload, Request as _};
use teloxide_core::types::{AllowedUpdate, Update};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::handler::UpdateHandler;
use crate::health::HealthCell;
use crate::updates;

/// Updates fetched per call (Telegram's maximum).
const BATCH_LIMIT: u8 = 100;
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The update kinds the bridge asks for, when polling and when registering the webhook.
/// Telegram sends `message_reaction` only to bots that ask for it by name here (and, in groups,
/// only to administrators; the bridge's chats are private chats, where it always comes).
pub(crate) fn allowed_updates() -> Vec<AllowedUpdate> {
    vec![AllowedUpdate::Message, AllowedUpdate::EditedMessage, AllowedUpdate::MessageReaction]
}

/// `getUpdates`, answered as raw JSON: teloxide's own request reads the whole answer as typed
/// updates, where one bad update fails (or panics) them all.
#[derive(Debug, Clone, Serialize)]
struct GetRawUpdates {
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<i32>,
    limit: u8,
    timeout: u32,
    allowed_updates: Vec<AllowedUpdate>,
}

impl Payload for GetRawUpdates {
    type Output = Vec<Value>;
    const NAME: &'static str = "GetUpdates";

    fn timeout_hint(&self) -> Option<Duration> {
        Some(Duration::from_secs(u64::from(self.timeout)))
    }
}

/// Why the loop ended other than by being stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct LoopFailed(pub(crate) String);

/// Polls until `cancel` fires; an `Err` if handling an update failed in a way retrying cannot
/// (a panic). `health` is set healthy whenever Telegram answered.
pub(crate) async fn run(
    handler: Arc<UpdateHandler>,
    bot: Bot,
    poll_timeout: Duration,
    cancel: CancellationToken,
    health: Arc<HealthCell>,
) -> Result<(), LoopFailed> {
    let timeout = u32::try_from(poll_timeout.as_secs()).unwrap_or(u32::MAX);
    let mut offset: Option<i32> = None;
    let mut backoff = MIN_BACKOFF;
    tracing::info!(timeout_secs = timeout, "polling Telegram for updates");
    let mut failed = None;
    while !cancel.is_cancelled() {
        let request =
            GetRawUpdates { offset, limit: BATCH_LIMIT, timeout, allowed_updates: allowed_updates() };
        let result = tokio::select! {
            () = cancel.cancelled() => break,
            result = JsonRequest::new(bot.clone(), request).send() => result,
        };
        let raw = match result {
            Ok(raw) => {
                backoff = MIN_BACKOFF;
                health.healthy();
                raw
            }
            Err(error) => {
                let wait = match &error {
                    RequestError::RetryAfter(seconds) => seconds.duration(),
                    RequestError::Api(ApiError::TerminatedByOtherGetUpdates) => {
                        tracing::error!(
                            "another process polls this bot; only one bridge may use a bot token"
                        );
                        MAX_BACKOFF
                    }
                    _ => {
                        tracing::warn!(error = %crate::errors::classify(error.clone()), "getUpdates failed; retrying");
                        next_backoff(&mut backoff)
                    }
                };
                if sleep_or_cancel(wait, &cancel).await {
                    break;
                }
                continue;
            }
        };
        let outcome = handle_batch(&handler, raw, &cancel).await;
        // Never back: an update served again below the offset must not un-confirm the
        // updates after it.
        offset = offset.max(outcome.offset);
        if let Some(reason) = outcome.failed {
            failed = Some(reason);
            break;
        }
    }
    if let Some(offset) = offset {
        confirm(&bot, offset).await;
    }
    match failed {
        Some(reason) => Err(LoopFailed(reason)),
        None => {
            tracing::info!("stopped polling Telegram");
            Ok(())
        }
    }
}

/// What came of a batch.
struct BatchOutcome {
    /// The offset that confirms what was handled, if that moved.
    offset: Option<i32>,
    /// Why handling failed for good, if it did.
    failed: Option<String>,
}

/// Reads and handles one `getUpdates` answer: each chat's updates in order, chats side by side.
async fn handle_batch(
    handler: &Arc<UpdateHandler>,
    raw: Vec<Value>,
    cancel: &CancellationToken,
) -> BatchOutcome {
    let mut ids = BTreeSet::new();
    let mut handled = BTreeSet::new();
    let mut chats: HashMap<Option<i64>, Vec<Update>> = HashMap::new();
    for value in raw {
        match updates::parse(value) {
            Ok(update) => {
                ids.insert(update.id.0);
                chats.entry(updates::chat_of(&update)).or_default().push(update);
            }
            Err(malformed) => {
                tracing::warn!(
                    update_id = malformed.update_id,
                    reason = %malformed,
                    "an update the bridge cannot read; it is confirmed and skipped"
                );
                if let Some(id) = malformed.update_id {
                    ids.insert(id);
                    handled.insert(id);
                }
            }
        }
    }
    let mut tasks = JoinSet::new();
    for (_, updates) in chats {
        tasks.spawn(handle_in_order(handler.clone(), updates, cancel.clone()));
    }
    let mut failed = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(done) => handled.extend(done),
            Err(error) => {
                let reason = format!("handling an update failed: {}", panic_text(error));
                tracing::error!(reason, "the update is not confirmed");
                failed.get_or_insert(reason);
            }
        }
    }
    let offset = confirmed_offset(&ids, &handled);
    BatchOutcome { offset, failed }
}

/// The offset that confirms the updates of a batch (`ids`) that were handled: everything below
/// the first one that was not (it comes again, with everything after it).
fn confirmed_offset(ids: &BTreeSet<u32>, handled: &BTreeSet<u32>) -> Option<i32> {
    match ids.iter().find(|id| !handled.contains(id)) {
        Some(&open) => Some(to_offset_of(open)),
        None => ids.last().map(|&last| next_offset(last)),
    }
}

/// Handles `updates` (one chat's) in order, each retried until it is stored; answers the ids
/// handled (all of them, unless stopped meanwhile).
async fn handle_in_order(
    handler: Arc<UpdateHandler>,
    updates: Vec<Update>,
    cancel: CancellationToken,
) -> Vec<u32> {
    let mut handled = Vec::with_capacity(updates.len());
    for update in updates {
        let mut retry = MIN_BACKOFF;
        while let Err(e) = handler.handle(&update).await {
            tracing::warn!(update_id = update.id.0, error = %e, "update not stored; it will be handled again");
            if sleep_or_cancel(next_backoff(&mut retry), &cancel).await {
                return handled;
            }
        }
        handled.push(update.id.0);
    }
    handled
}

/// A task's panic, in words.
pub(crate) fn panic_text(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return error.to_string();
    }
    let payload = error.into_panic();
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(text), _) => format!("panicked: {text}"),
        (_, Some(text)) => format!("panicked: {text}"),
        _ => "panicked".to_owned(),
    }
}

/// Tells Telegram everything below `offset` was handled, without waiting for new updates.
async fn confirm(bot: &Bot, offset: i32) {
    let request =
        GetRawUpdates { offset: Some(offset), limit: 1, timeout: 0, allowed_updates: allowed_updates() };
    if let Err(e) = JsonRequest::new(bot.clone(), request).send().await {
        tracing::warn!(error = %crate::errors::classify(e), "could not confirm the last updates; they will be served again and deduplicated");
    }
}

/// The offset that confirms `update_id` and everything before it.
fn next_offset(update_id: u32) -> i32 {
    i32::try_from(update_id).map_or(i32::MAX, |id| id.saturating_add(1))
}

/// The offset that confirms everything before `update_id`, not it.
fn to_offset_of(update_id: u32) -> i32 {
    i32::try_from(update_id).unwrap_or(i32::MAX)
}

fn next_backoff(current: &mut Duration) -> Duration {
    let wait = *current;
    *current = (*current * 2).min(MAX_BACKOFF);
    wait
}

/// Sleeps; `true` if cancelled meanwhile.
pub(crate) async fn sleep_or_cancel(wait: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(wait) => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_offset_confirms_up_to_the_first_update_not_handled() {
        let set = |ids: &[u32]| ids.iter().copied().collect::<BTreeSet<u32>>();
        assert_eq!(confirmed_offset(&set(&[5, 6, 7]), &set(&[5, 6, 7])), Some(8));
        assert_eq!(confirmed_offset(&set(&[5, 6, 7]), &set(&[5, 7])), Some(6), "6 comes again, and 7");
        assert_eq!(confirmed_offset(&set(&[5, 6]), &set(&[])), Some(5), "nothing new confirmed");
        assert_eq!(confirmed_offset(&set(&[]), &set(&[])), None);
    }
}
