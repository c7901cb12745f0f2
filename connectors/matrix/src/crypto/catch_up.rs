//! The catch-up: a ghost device's to-device messages fetched with `/sync` as the device, so
//! that a room key the homeserver's push never delivered still arrives.
//!
//! Synapse's appservice push of to-device messages can skip messages for good (concurrent
//! `/sendToDevice` calls handled out of order, docs/engine.md, "Encrypted rooms: plan"), and a
//! transaction whose answer failed is sent again without them. The messages stay in the
//! device's inbox on the homeserver until the device syncs, so the bridge syncs as the device
//! ([`crate::client::Client::sync_to_device`]) when an event waits for a key it does not have,
//! and when the device is made (its first since token; later syncs ask only for what came
//! after, and Synapse deletes what came before). What a sync brings is kept with its
//! `next_batch` in one transaction ([`super::inbox_store::ToDeviceInbox::keep_caught_up`]);
//! what the push brought already is known by its digest and kept once; the opener
//! ([`super::inbox`]) opens the rest. The bounds are the push's: at most
//! [`crate::client::MAX_SYNC_TO_DEVICE`] messages a sync, of at most
//! [`super::to_device::MAX_TO_DEVICE_BYTES`] each, and [`ROUNDS`] syncs a catch-up.
//!
//! Debounced per device ([`super::catch_up_gate`]): one catch-up in flight, and none within a
//! few seconds of the last one started, so a room of held events does not sync once per event
//! and retry.

use ruma::UserId;
use serde_json::Value;

use super::device::GhostDevice;
use super::devices::{DeviceError, GhostDevices};
use super::inbox_store::{InboxWrite, Via};
use super::to_device::{ToDeviceEvent, read_event};
use crate::client::MAX_SYNC_TO_DEVICE;

/// Syncs in one catch-up at most (each up to [`MAX_SYNC_TO_DEVICE`] messages).
const ROUNDS: usize = 5;

impl GhostDevices {
    /// Fetches what the homeserver holds for `ghost`'s device and opens it, unless a catch-up of
    /// the device is in flight or started within [`super::catch_up_gate::SPACING`]: how many messages were new (not
    /// pushed before). Nothing to do for a ghost without a device or a bridge without an inbox.
    pub async fn catch_up(&self, ghost: &UserId) -> Result<usize, DeviceError> {
        if self.inbox().is_none() || !self.catch_ups.begin(ghost) {
            return Ok(0);
        }
        let result = self.catch_up_now(ghost).await;
        self.catch_ups.end(ghost);
        result
    }

    async fn catch_up_now(&self, ghost: &UserId) -> Result<usize, DeviceError> {
        let Some(loaded) = self.load(ghost).await? else { return Ok(0) };
        if !loaded.device_published {
            return Ok(0);
        }
        let new = self.fetch(&loaded.device).await?;
        if new > 0 {
            tracing::info!(%ghost, device = %loaded.device.device, new, "the catch-up brought to-device messages the push had not");
        }
        match self.open_pending_of(ghost, &loaded.device.device).await {
            Ok(()) | Err(DeviceError::HeldElsewhere) => {}
            Err(error) => {
                tracing::info!(%ghost, %error, "caught-up messages not opened yet; the opener tries again");
                self.wake_opener();
            }
        }
        Ok(new)
    }

    /// The syncs of one catch-up, each kept with its `next_batch`: how many messages were new.
    async fn fetch(&self, device: &GhostDevice) -> Result<usize, DeviceError> {
        let Some(inbox) = self.inbox() else { return Ok(0) };
        let (ghost, id) = (&device.user, &device.device);
        let mut new = 0;
        for _ in 0..ROUNDS {
            let since = inbox.since(ghost, id).await?;
            let caught = self.client().sync_to_device(ghost, id, since.as_deref()).await?;
            let full = caught.events.len() >= MAX_SYNC_TO_DEVICE;
            let messages: Vec<InboxWrite> = caught
                .events
                .into_iter()
                .take(MAX_SYNC_TO_DEVICE)
                .filter_map(|event| addressed(event, device))
                .filter(|event| event.event_type == "m.room.encrypted")
                .map(|event| InboxWrite::new(event, Via::CatchUp))
                .collect();
            new += inbox.keep_caught_up(ghost, id, messages, &caught.next_batch).await?;
            if !full {
                break;
            }
        }
        Ok(new)
    }

    /// The first since token of a device just made: what its later catch-ups start from. A
    /// failure is only logged: the first catch-up then starts from the beginning of the device's
    /// inbox, which holds what the push brought too (kept once, by digest).
    pub(super) async fn first_catch_up(&self, device: &GhostDevice) {
        if self.inbox().is_none() {
            return;
        }
        if let Err(error) = self.fetch(device).await {
            tracing::info!(ghost = %device.user, %error, "the new device's first sync failed; its first catch-up starts from the beginning");
        }
        self.wake_opener();
    }
}

/// A to-device event of a sync, read as the push's are (its recipient is the device that synced).
fn addressed(mut event: Value, device: &GhostDevice) -> Option<ToDeviceEvent> {
    let object = event.as_object_mut()?;
    object.insert("to_user_id".to_owned(), Value::String(device.user.to_string()));
    object.insert("to_device_id".to_owned(), Value::String(device.device.to_string()));
    read_event(event)
}
