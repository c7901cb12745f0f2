//! Long polling: `getUpdates` in a loop, confirming an update only after it was handled.
//!
//! Telegram keeps an update until a `getUpdates` call asks for an `offset` past its id, so the
//! offset is the acknowledgement. It moves past an update only after [`UpdateHandler::handle`]
//! returned `Ok` (the engine stored the batch); an update whose handling failed is retried in
//! place, with backoff, before any later one, so nothing is skipped and the order holds. If the
//! process dies, Telegram serves the unconfirmed updates again and the sink answers
//! `Duplicate` for those it already stored.
//!
//! Stopping confirms what was handled with one last `getUpdates(offset, timeout = 0)`, so a
//! clean restart re-serves nothing.

use std::sync::Arc;
use std::time::Duration;

use teloxide_core::ApiError;
use teloxide_core::Bot;
use teloxide_core::RequestError;
use teloxide_core::payloads::GetUpdatesSetters as _;
use teloxide_core::prelude::Requester as _;
use teloxide_core::requests::Request as _;
use teloxide_core::types::AllowedUpdate;
use tokio_util::sync::CancellationToken;

use crate::handler::UpdateHandler;

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

/// Polls until `cancel` fires.
pub(crate) async fn run(
    handler: Arc<UpdateHandler>,
    bot: Bot,
    poll_timeout: Duration,
    cancel: CancellationToken,
) {
    let timeout_secs = u32::try_from(poll_timeout.as_secs()).unwrap_or(u32::MAX);
    let mut offset: Option<i32> = None;
    let mut backoff = MIN_BACKOFF;
    tracing::info!(timeout_secs, "polling Telegram for updates");
    'polling: while !cancel.is_cancelled() {
        let mut request =
            bot.get_updates().timeout(timeout_secs).limit(BATCH_LIMIT).allowed_updates(allowed_updates());
        if let Some(offset) = offset {
            request = request.offset(offset);
        }
        let result = tokio::select! {
            () = cancel.cancelled() => break,
            result = request.send() => result,
        };
        let updates = match result {
            Ok(updates) => {
                backoff = MIN_BACKOFF;
                updates
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
        for update in updates {
            let mut retry = MIN_BACKOFF;
            loop {
                match handler.handle(&update).await {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(update_id = update.id.0, error = %e, "update not stored; it will be handled again");
                        if sleep_or_cancel(next_backoff(&mut retry), &cancel).await {
                            break 'polling;
                        }
                    }
                }
            }
            offset = Some(next_offset(update.id.0));
        }
    }
    if let Some(offset) = offset {
        confirm(&bot, offset).await;
    }
    tracing::info!("stopped polling Telegram");
}

/// Tells Telegram everything below `offset` was handled, without waiting for new updates.
async fn confirm(bot: &Bot, offset: i32) {
    let request = bot.get_updates().offset(offset).timeout(0).limit(1).allowed_updates(allowed_updates());
    if let Err(e) = request.send().await {
        tracing::warn!(error = %crate::errors::classify(e), "could not confirm the last updates; they will be served again and deduplicated");
    }
}

fn next_offset(update_id: u32) -> i32 {
    i32::try_from(update_id).map_or(i32::MAX, |id| id.saturating_add(1))
}

fn next_backoff(current: &mut Duration) -> Duration {
    let wait = *current;
    *current = (*current * 2).min(MAX_BACKOFF);
    wait
}

/// Sleeps; `true` if cancelled meanwhile.
async fn sleep_or_cancel(wait: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(wait) => false,
    }
}
