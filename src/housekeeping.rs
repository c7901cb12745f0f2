//! What every node process does for itself on a timer, unlike the expiry pass
//! (`expiry`), which one process does for all on the shared database.
//!
//! Today that is letting go of reads kept for reuse (`recent_reads`): the identity rows and
//! portals read in the last second. They are swept here rather than when they are next used,
//! because a node at rest uses nothing, and a burst of reads would otherwise keep its memory
//! until the next burst (docs/benchmarks.md, "Idle memory").

use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::identities::IdentityVault;
use crate::store::Store;

/// How often reads kept for reuse are swept: what a node keeps at rest is at most this long's
/// reads. A sweep of an empty map costs nothing; of a full one, a pass over 10,000 entries.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Runs until `stop` is cancelled.
pub async fn run(store: Store, vault: IdentityVault, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(SWEEP_INTERVAL);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        store.sweep_recent_reads();
        vault.sweep_recent_reads();
    }
}
