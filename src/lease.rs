//! Work with one owner among the node processes sharing a database: leases held and renewed.
//!
//! Replicas behind a load balancer share everything through the database (docs/scaling.md),
//! except the few things exactly one of them may do at a time: Telegram's long poll (Telegram
//! serves one poller per bot) and the expiry pass. Each is a lease row ([`crate::store::leases`]):
//! [`Leases::wait_for`] waits until this process holds it and keeps renewing it; the
//! [`Held`] lease's token is cancelled when it is lost, so the work stops. A process that dies
//! stops renewing, and the next one to try after [`HELD_FOR`] takes over: the bound on a
//! takeover is `HELD_FOR + TRY_EVERY` plus the work's own start.
//!
//! A renewal that fails (the database unreachable) is retried; once the lease may have run out
//! by the database's clock ([`HELD_FOR`] since the last renewal was sent), the work stops, as
//! another process may have taken it. On SQLite there is one process, which holds every lease
//! without a row.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Backend;
use crate::store::Store;

/// How long a lease runs past its last renewal: long enough that a renewal every
/// [`TRY_EVERY`] survives a few slow or failed ones, short enough that work is not left undone
/// for long when its owner dies.
pub const HELD_FOR: Duration = Duration::from_secs(10);
/// How often the holder renews, and how often a process waiting for a lease tries to take it.
pub const TRY_EVERY: Duration = Duration::from_secs(2);

/// The lease on Telegram's long poll.
pub const TELEGRAM_POLLING: &str = "telegram-polling";
/// The lease on the expiry pass.
pub const EXPIRY: &str = "expiry";

/// This process's leases: its name as their owner, and the store that keeps them.
#[derive(Clone)]
pub struct Leases {
    store: Store,
    owner: Arc<str>,
    /// Whether other processes may share the database (PostgreSQL). SQLite belongs to one
    /// process, which owns every lease without writing a row: a restart after `kill -9` then
    /// need not wait for its predecessor's lease to run out.
    shared: bool,
}

impl Leases {
    /// The leases of this process, under a name new at every start: a restarted process does
    /// not inherit what its predecessor held, which the predecessor may still be doing.
    pub fn new(store: Store) -> Self {
        let nonce = getrandom::u64().unwrap_or_default();
        let owner = format!("pid-{}-{nonce:016x}", std::process::id());
        let shared = store.backend() == Backend::Postgres;
        Self { store, owner: owner.into(), shared }
    }

    /// This process's name as a lease owner.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Takes or renews `name` once: `true` if this process holds it now. A database error is
    /// logged and counts as not holding it.
    pub async fn try_take(&self, name: &str, held_for: Duration) -> bool {
        if !self.shared {
            return true;
        }
        match self.store.take_lease(name, &self.owner, held_for).await {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(lease = name, %error, "could not take or renew a lease; will retry");
                false
            }
        }
    }

    /// Waits until this process holds `name`, then keeps it renewed; `None` if `stop` fired
    /// first.
    pub async fn wait_for(&self, name: &'static str, stop: &CancellationToken) -> Option<Held> {
        loop {
            let sent = Instant::now();
            if self.try_take(name, HELD_FOR).await {
                tracing::info!(lease = name, owner = %self.owner, "this process holds the lease now");
                let ended = stop.child_token();
                let renewing = tokio::spawn(renew(self.clone(), name, sent, ended.clone()));
                return Some(Held { leases: self.clone(), name, ended, renewing });
            }
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(TRY_EVERY) => {}
            }
        }
    }
}

/// Renews `name` every [`TRY_EVERY`] until `ended` fires, and fires it when the lease is lost.
async fn renew(leases: Leases, name: &'static str, mut renewed: Instant, ended: CancellationToken) {
    loop {
        tokio::select! {
            () = ended.cancelled() => return,
            () = tokio::time::sleep(TRY_EVERY) => {}
        }
        if !leases.shared {
            continue;
        }
        let sent = Instant::now();
        match leases.store.take_lease(name, &leases.owner, HELD_FOR).await {
            Ok(true) => renewed = sent,
            Ok(false) => {
                tracing::warn!(lease = name, "another process took the lease; stopping its work here");
                ended.cancel();
                return;
            }
            Err(error) if renewed.elapsed() + TRY_EVERY >= HELD_FOR => {
                tracing::warn!(lease = name, %error, "could not renew the lease before it runs out; stopping its work here");
                ended.cancel();
                return;
            }
            Err(error) => tracing::warn!(lease = name, %error, "could not renew the lease; will retry"),
        }
    }
}

/// A lease this process holds, renewed until it is released or lost.
pub struct Held {
    leases: Leases,
    name: &'static str,
    ended: CancellationToken,
    renewing: JoinHandle<()>,
}

impl Held {
    /// Cancelled when the lease is lost or the `stop` it was taken under fired.
    pub fn ended(&self) -> CancellationToken {
        self.ended.clone()
    }

    /// Stops renewing and gives the lease up, so that another process takes over at once.
    pub async fn release(self) {
        self.ended.cancel();
        let _ = self.renewing.await;
        if !self.leases.shared {
            return;
        }
        if let Err(error) = self.leases.store.release_lease(self.name, &self.leases.owner).await {
            tracing::warn!(lease = self.name, %error, "could not give the lease up; it runs out by itself");
        }
    }
}
