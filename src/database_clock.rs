//! Keeps this process's clock on the database's (`crate::clock`, docs/scaling.md "Clocks").
//!
//! Replicas share their times through the database: a lease one wrote, another compares with
//! its own now. Each reads the database's clock at start-up, before it serves or claims
//! anything, and every [`EVERY`] after, so that a host clock that is off (or stepped by NTP
//! later) moves no time the node writes or compares. A reading that took longer than
//! [`MAX_ROUND_TRIP`] says little about when it was taken and is not used; a database that
//! does not answer leaves the clock as it was, carried forward on the monotonic clock.
//!
//! The log says how far this host's clock is from the database's: at `info` at start-up, at
//! `warn` when it is more than [`WARN_BEYOND_MS`] off, so that an operator finds the host whose
//! NTP is broken.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::store::Store;

/// How often the database's clock is read.
pub const EVERY: Duration = Duration::from_secs(10);
/// The longest round trip of a reading that is used.
const MAX_ROUND_TRIP: Duration = Duration::from_secs(1);
/// A host clock further than this from the database's is worth a warning.
const WARN_BEYOND_MS: i64 = 1_000;

/// Reads the database's clock once and follows it; `false` if it could not be read (or not
/// well enough), in which case the clock is left as it was.
pub async fn follow(store: &Store) -> bool {
    let reading = match store.database_time().await {
        Ok(reading) => reading,
        Err(error) => {
            tracing::warn!(%error, "reading the database's clock failed; keeping the node's clock as it was");
            return false;
        }
    };
    let round_trip = reading.answered.saturating_duration_since(reading.asked);
    if round_trip > MAX_ROUND_TRIP {
        tracing::debug!(?round_trip, "the database's clock answered too slowly to be followed");
        return false;
    }
    let system = clock::system_ms();
    let corrected = clock::follow(reading.now_ms, reading.asked, reading.answered);
    // Database minus host: negative when this host's clock runs ahead.
    let offset_ms = reading.now_ms.saturating_sub(system);
    if offset_ms.abs() > WARN_BEYOND_MS && corrected != 0 {
        tracing::warn!(
            offset_ms,
            "this host's clock is off the database's; the node keeps the database's (check NTP on this host)"
        );
    }
    true
}

/// Follows the database's clock at start-up; logs how far this host's is from it.
pub async fn follow_at_start(store: &Store) {
    if follow(store).await {
        tracing::info!(
            offset_ms = clock::now_ms().saturating_sub(clock::system_ms()),
            "the node keeps the database's clock"
        );
    }
}

/// Follows the database's clock every [`EVERY`] until `stop`.
pub async fn run(store: Store, stop: CancellationToken) {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await; // the first tick is at once; start-up read the clock just before
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {
                follow(&store).await;
            }
        }
    }
}
