//! The TTL cleanup worker: deletes expired envelopes, challenges and sessions on a fixed interval,
//! and prunes what the bridge keeps for a while only (done and failed jobs, batch keys, Telegram
//! reply routes and replay records, the Megolm message indices under their floors and device
//! lists no longer used; [`prune_bridge_keys`]).
//!
//! Expired envelopes are already invisible to `incoming` (the query filters on `expires_at`),
//! so the interval only bounds how long their rows linger on disk; once a minute is plenty and
//! cheap. The reference DS does this daily (docs/protocol.md §9.4). The first pass runs at start-up,
//! so a node that was down for a while catches up at once. Deletion is batched inside the
//! store, so a large backlog never holds the write lock for long.
//!
//! Of several node processes on one database, one runs each pass: whoever holds the lease
//! [`lease::EXPIRY`], which the holder renews at every pass and another takes
//! [`EXPIRY_LEASE`] after the holder's last pass when it died (docs/scaling.md).

use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::lease::{self, Leases};
use crate::store::{MEGOLM_INDICES_KEPT_PER_KEY, Store};
use crate::telemetry::metrics::EXPIRED_DELETED;

/// How often expired rows are deleted.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// How long finished bridge jobs and inbound batch keys are kept. A done job's key still
/// deduplicates a replayed envelope or event, and networks redeliver for hours at most
/// (Synapse backs off to about a day), so a week leaves a wide margin at a small cost. A failed
/// job is kept as long, without its payload, for the operator to see why it failed.
pub const BRIDGE_KEYS_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long the expiry lease lasts past a pass: two passes and a half, so that a slow pass or
/// a missed renewal does not hand the work to another process.
pub const EXPIRY_LEASE: Duration = Duration::from_secs(150);

/// Runs until `stop` is cancelled; a pass only while this process holds the lease
/// [`lease::EXPIRY`].
pub async fn run(store: Store, leases: Leases, interval: Duration, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if !leases.try_take(lease::EXPIRY, EXPIRY_LEASE.max(interval * 2)).await {
            continue;
        }
        match store.delete_expired(now_ms()).await {
            Ok(expired) => {
                metrics::counter!(EXPIRED_DELETED).increment(expired.envelopes);
                if expired.envelopes > 0 || expired.challenges > 0 || expired.sessions > 0 {
                    tracing::info!(
                        envelopes = expired.envelopes,
                        challenges = expired.challenges,
                        sessions = expired.sessions,
                        "deleted expired rows"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "deleting expired rows failed; will retry"),
        }
        prune_bridge_keys(&store, now_ms()).await;
        prune_to_device(&store, now_ms()).await;
    }
}

/// Forgets the ghost devices' to-device messages settled (opened or dropped) more than
/// [`SETTLED_KEPT_MS`](crate::store::to_device_inbox::SETTLED_KEPT_MS) ago: kept that long, they
/// tell a message the catch-up brings again from a new one (and Olm refuses it anyway after).
pub async fn prune_to_device(store: &Store, now_ms: i64) {
    let before = now_ms.saturating_sub(crate::store::to_device_inbox::SETTLED_KEPT_MS);
    match store.prune_to_device(before).await {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, "pruned settled to-device messages of ghost devices"),
        Err(error) => tracing::warn!(%error, "pruning to-device messages failed; will retry"),
    }
}

/// Prunes, as of `now_ms`, what is older than [`BRIDGE_KEYS_KEPT`]: done and failed jobs, inbound
/// batch keys, and the Telegram reply routes (which conversation a relayed message belongs to)
/// with the reactions and replay records kept beside them. A route lives as long as the job that relayed its message;
/// a Telegram reply to an older relayed message is routed like a plain message, to the current
/// contact, and a reaction to it is not relayed.
pub async fn prune_bridge_keys(store: &Store, now_ms: i64) {
    let kept = i64::try_from(BRIDGE_KEYS_KEPT.as_millis()).unwrap_or(i64::MAX);
    let before = now_ms.saturating_sub(kept);
    let jobs = match (store.prune_done_jobs(before).await, store.prune_failed_jobs(before).await) {
        (Ok(done), Ok(failed)) => Ok(done + failed),
        (Err(error), _) | (_, Err(error)) => Err(error),
    };
    let batches = store.prune_inbound_batches(before).await;
    let routes = store.prune_telegram_routes(before).await;
    prune_megolm(store, before).await;
    match (jobs, batches, routes) {
        (Ok(jobs), Ok(batches), Ok(routes)) if jobs > 0 || batches > 0 || routes > 0 => {
            tracing::info!(
                jobs,
                batches,
                routes,
                "pruned finished bridge jobs, old batch keys and reply routes"
            );
        }
        (Ok(_), Ok(_), Ok(_)) => {}
        (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
            tracing::warn!(%error, "pruning bridge keys failed; will retry")
        }
    }
}

/// Prunes the decrypted Megolm message indices kept before `before_ms` or beyond
/// [`MEGOLM_INDICES_KEPT_PER_KEY`] per room key (raising each key's floor, so no replay opens:
/// `crate::store::megolm_indices`), and the device lists nobody used since then.
async fn prune_megolm(store: &Store, before_ms: i64) {
    match (
        store.prune_megolm_indices(before_ms, MEGOLM_INDICES_KEPT_PER_KEY).await,
        store.prune_device_lists(before_ms).await,
    ) {
        (Ok(indices), Ok(lists)) if indices > 0 || lists > 0 => {
            tracing::info!(indices, lists, "pruned old Megolm message indices and unused device lists")
        }
        (Ok(_), Ok(_)) => {}
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(%error, "pruning Megolm message indices or device lists failed; will retry")
        }
    }
}
