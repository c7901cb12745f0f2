//! The kept to-device messages of ghost devices, opened after the homeserver had its 200.
//!
//! The route keeps a transaction's to-device messages ([`super::inbox_store`]) and answers; the
//! catch-up ([`super::catch_up`]) keeps what the push lost. Then, per device, under the ghost's
//! lease (one opener among replicas) and in arrival order (Olm ratchets: a pre-key message opens
//! the session the next ones need), each message is opened ([`GhostDevices::open_to_device`]).
//! A message that no session opens yet waits for an earlier one of its session: after anything
//! opened, the waiting ones are tried again; one that still opens nothing after
//! [`GIVE_UP_ATTEMPTS`] tries and [`GIVE_UP_AFTER_MS`] is dropped with a log line (a message
//! opened before and brought again by the catch-up ends so too, quietly). A contended account,
//! a lease held by another replica or a failing store leaves everything pending, and the device
//! is tried again with a backoff (from [`POLL`], doubling, at most 30 s): the task wakes when a
//! message is kept, and every [`POLL`] besides (another replica may have kept it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ruma::{OwnedDeviceId, OwnedUserId, UserId};
use tokio::task::JoinHandle;

use super::devices::{DeviceError, GhostDevices};
use super::inbox_store::{InboxWrite, KeptToDevice, ToDeviceInbox, Unopened, Via};
use super::receive::Opening;
use super::to_device::ToDeviceEvent;

/// How often the opener looks for pending messages without being woken.
pub const POLL: Duration = Duration::from_secs(2);
/// Devices served in one round at most.
const DEVICES_PER_ROUND: usize = 64;
/// Messages of one device read in one round at most (a transaction brings at most 100).
const MESSAGES_PER_ROUND: usize = 200;
/// A waiting message is dropped after this many tries…
pub const GIVE_UP_ATTEMPTS: u32 = 5;
/// …once it has waited this long: long enough for a catch-up to bring what came before it.
pub const GIVE_UP_AFTER_MS: i64 = 60_000;
/// Passes over one device's messages in a round: each pass after one that opened something may
/// open a message that waited for it.
const PASSES: usize = 4;

impl GhostDevices {
    /// The store of kept to-device messages, if the service gave one.
    pub(super) fn inbox(&self) -> Option<&Arc<dyn ToDeviceInbox>> {
        self.inbox.get()
    }

    /// Keeps to-device messages in `inbox` before they are opened ([`ToDeviceOpener`]); the
    /// first setting stays.
    pub fn set_inbox(&self, inbox: Arc<dyn ToDeviceInbox>) {
        if self.inbox.set(inbox).is_err() {
            tracing::warn!("the ghost devices' to-device inbox was set twice; the first stays");
        }
    }

    /// Takes the to-device messages of transaction `txn_id`: kept to be opened afterwards, or,
    /// without an inbox, opened at once. An error when they could not be kept (or, opened at
    /// once, the store failed): the homeserver must not have its 200.
    pub async fn accept_to_device(
        &self,
        messages: Vec<ToDeviceEvent>,
        txn_id: &str,
    ) -> Result<(), DeviceError> {
        let Some(inbox) = self.inbox() else {
            self.receive(messages).await?;
            return Ok(());
        };
        // Only Olm messages open anything; the rest (key requests to a ghost) are not kept.
        let writes: Vec<InboxWrite> = messages
            .into_iter()
            .filter(|m| m.event_type == "m.room.encrypted")
            .map(|m| InboxWrite::new(m, Via::Push))
            .collect();
        if writes.is_empty() {
            return Ok(());
        }
        let total = writes.len();
        let new = inbox.keep_to_device(writes).await?;
        tracing::debug!(txn_id, total, new, "to-device messages kept");
        self.wake_opener();
        Ok(())
    }

    /// Tells the opener that messages were kept.
    pub fn wake_opener(&self) {
        self.wake.notify_one();
    }

    /// Opens what is pending for every device with pending messages (those whose lease this
    /// process holds), but those `backoffs` holds back.
    async fn open_pending(&self, backoffs: &mut Backoffs) -> Result<(), DeviceError> {
        let Some(inbox) = self.inbox() else { return Ok(()) };
        for (ghost, device) in inbox.pending_devices(DEVICES_PER_ROUND).await? {
            let key = (ghost, device);
            if backoffs.holds_back(&key) {
                continue;
            }
            match self.open_pending_of(&key.0, &key.1).await {
                Ok(()) => backoffs.forget(&key),
                Err(DeviceError::HeldElsewhere) => backoffs.failed(key),
                Err(error) => {
                    tracing::info!(ghost = %key.0, device = %key.1, %error, "kept to-device messages not opened yet; tried again later");
                    backoffs.failed(key);
                }
            }
        }
        Ok(())
    }

    /// Opens `device`'s pending messages in arrival order.
    pub(super) async fn open_pending_of(
        &self,
        ghost: &UserId,
        device: &OwnedDeviceId,
    ) -> Result<(), DeviceError> {
        let Some(inbox) = self.inbox() else { return Ok(()) };
        let _one_opener = self.opening.lock().await;
        if !self.store().hold(ghost).await? {
            return Err(DeviceError::HeldElsewhere);
        }
        let mut waiting: Vec<KeptToDevice> =
            inbox.pending_to_device(ghost, device, MESSAGES_PER_ROUND).await?;
        for _ in 0..PASSES {
            let mut opened_any = false;
            let mut still = Vec::with_capacity(waiting.len());
            for pending in waiting {
                match self.open_to_device(&pending.event, Some(pending.seq), pending.via).await? {
                    Opening::Kept { .. } => opened_any = true,
                    Opening::NotYet => still.push(pending),
                    Opening::Never(why) => {
                        tracing::debug!(%ghost, seq = pending.seq, %why, "a kept to-device message can never open; dropped");
                        inbox.settle_unopened(pending.seq, Unopened::Dropped).await?;
                    }
                }
            }
            waiting = still;
            if !opened_any || waiting.is_empty() {
                break;
            }
        }
        let now = now_ms();
        for pending in waiting {
            let tries = pending.attempts + 1;
            if tries >= GIVE_UP_ATTEMPTS && now - pending.created_at_ms >= GIVE_UP_AFTER_MS {
                // Pushed and never opened: its session's start never came. Caught up: most often
                // a message the push had brought and that was opened then.
                match pending.via {
                    Via::Push => tracing::info!(%ghost, sender = %pending.event.sender, seq = pending.seq,
                        "a to-device message no Olm session opened was dropped"),
                    Via::CatchUp => {
                        tracing::debug!(%ghost, sender = %pending.event.sender, seq = pending.seq,
                        "a caught-up to-device message no Olm session opens (opened before, most likely) was dropped")
                    }
                }
                inbox.settle_unopened(pending.seq, Unopened::Dropped).await?;
            } else {
                inbox.settle_unopened(pending.seq, Unopened::Retry).await?;
            }
        }
        Ok(())
    }
}

/// Devices whose messages could not be opened (their account held by another replica or
/// contended, the store failing), and when each is tried again: after [`POLL`], doubling up to
/// [`MAX_BACKOFF`]. A wake-up does not hurry them: what is kept meanwhile waits its turn.
#[derive(Debug, Default)]
struct Backoffs(HashMap<(OwnedUserId, OwnedDeviceId), (Instant, Duration)>);

/// The longest a device's messages wait between two tries of a failing opening; the lease of
/// a replica that died runs out sooner (`HELD_FOR` in the service).
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Devices remembered at most; past it the memory starts afresh (a try sooner, nothing lost).
const MAX_BACKOFFS: usize = 4096;

impl Backoffs {
    fn holds_back(&self, key: &(OwnedUserId, OwnedDeviceId)) -> bool {
        self.0.get(key).is_some_and(|(next, _)| Instant::now() < *next)
    }

    fn failed(&mut self, key: (OwnedUserId, OwnedDeviceId)) {
        if self.0.len() >= MAX_BACKOFFS {
            self.0.clear();
        }
        let delay = self.0.get(&key).map_or(POLL, |(_, delay)| (*delay * 2).min(MAX_BACKOFF));
        self.0.insert(key, (Instant::now() + delay, delay));
    }

    fn forget(&mut self, key: &(OwnedUserId, OwnedDeviceId)) {
        self.0.remove(key);
    }
}

/// The task that opens kept to-device messages; it ends when aborted.
#[derive(Debug)]
pub struct ToDeviceOpener;

impl ToDeviceOpener {
    /// Starts the task over `devices`.
    pub fn start(devices: Arc<GhostDevices>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut backoffs = Backoffs::default();
            loop {
                if let Err(error) = devices.open_pending(&mut backoffs).await {
                    tracing::warn!(%error, "pending to-device messages could not be read; tried again shortly");
                }
                tokio::select! {
                    () = devices.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        })
    }
}

/// Milliseconds since the Unix epoch, by this host's clock (only ages of waiting messages).
pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
