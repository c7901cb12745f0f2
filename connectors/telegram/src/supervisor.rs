//! The polling task, kept running: restarted with backoff whenever it ends, and reported.
//!
//! The long poll is a task of its own. Should it end while the connector is not stopping (a
//! panic somewhere in handling an update, or a bug), nothing would receive updates any more
//! while sends still worked, and the node would go on answering "ready". So it runs under
//! [`run`], which logs why it ended, reports the connector [`Health::Unhealthy`] (for the
//! node's `/ready`), and starts it again after a backoff: 1 s, doubling up to a minute, and
//! back to 1 s once a loop has run a minute. The new loop is served every unconfirmed update
//! again (the sink answers `Duplicate` for those it stored) and reports healthy once Telegram
//! answered it.
//!
//! Where several processes share the bot, each loop runs in this process's [`Turn`] (see
//! [`crate::turn`]): the supervisor waits for the turn first, and a loop stopped because the
//! turn ended (another process polls now) is no failure: it waits for the next turn.

use std::sync::Arc;
use std::time::Duration;

use teloxide_core::Bot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::handler::UpdateHandler;
use crate::health::HealthCell;
use crate::poller::{self, panic_text, sleep_or_cancel};
use crate::turn::{PollingTurn, Turn};

const MIN_RESTART: Duration = Duration::from_secs(1);
const MAX_RESTART: Duration = Duration::from_secs(60);
/// A loop that ran this long before it ended failed anew: its restart waits the least again.
const STEADY: Duration = Duration::from_secs(60);

/// Runs the polling loop until `cancel` fires, in this process's turns when `turns` grants
/// them, restarting it whenever it ends otherwise.
pub(crate) async fn run(
    handler: Arc<UpdateHandler>,
    bot: Bot,
    poll_timeout: Duration,
    cancel: CancellationToken,
    health: Arc<HealthCell>,
    turns: Option<Arc<dyn PollingTurn>>,
) {
    let mut restart = MIN_RESTART;
    loop {
        let turn: Option<Box<dyn Turn>> = match &turns {
            Some(turns) => match turns.wait_for_turn(&cancel).await {
                Some(turn) => Some(turn),
                None => return,
            },
            None => None,
        };
        let polling = turn.as_ref().map_or_else(|| cancel.clone(), |turn| turn.ended());
        let started = Instant::now();
        let task = tokio::spawn(poller::run(
            handler.clone(),
            bot.clone(),
            poll_timeout,
            polling.clone(),
            health.clone(),
        ));
        let ended = task.await;
        if let Some(turn) = turn {
            turn.release().await;
        }
        let reason = match ended {
            Ok(Ok(())) if cancel.is_cancelled() => return,
            Ok(Ok(())) if polling.is_cancelled() => {
                tracing::info!("this process's turn at polling Telegram ended; another polls now");
                continue;
            }
            Ok(Ok(())) => "the polling loop ended".to_owned(),
            Ok(Err(failed)) => failed.to_string(),
            Err(error) => format!("the polling loop {}", panic_text(error)),
        };
        if cancel.is_cancelled() {
            return;
        }
        if started.elapsed() >= STEADY {
            restart = MIN_RESTART;
        }
        tracing::error!(
            reason,
            restart_in_ms = restart.as_millis(),
            "Telegram polling stopped; restarting it"
        );
        health
            .unhealthy(format!("Telegram polling stopped ({reason}); restarting in {} s", restart.as_secs()));
        if sleep_or_cancel(restart, &cancel).await {
            return;
        }
        restart = (restart * 2).min(MAX_RESTART);
    }
}
