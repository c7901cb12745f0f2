//! A ghost device's to-device messages read with `/sync` as that device: the catch-up
//! ([`crate::crypto::catch_up`]) for what the homeserver's push lost.
//!
//! Synapse pushes to-device messages to the appservice (MSC2409) from one stored position per
//! appservice, reading each notification's recipients only, so concurrent `/sendToDevice` calls
//! that finish out of order can leave messages behind that position, never pushed
//! (docs/engine.md, "Encrypted rooms: plan"). They stay in the device's inbox on the homeserver
//! until the device syncs, and the appservice may sync as its users' devices
//! (`?user_id=…&device_id=…`). The sync asks for nothing else: a filter that leaves out rooms,
//! presence and account data, no waiting (`timeout=0`), and presence left offline.

use std::time::Duration;

use ruma::api::AppserviceUserIdentity;
use ruma::api::client::filter::FilterDefinition;
use ruma::api::client::sync::sync_events;
use ruma::presence::PresenceState;
use ruma::{DeviceId, UserId};
use serde_json::Value;

use super::{Client, ClientError};

/// Most to-device messages Synapse returns in one sync; a full answer means there may be more.
pub const MAX_SYNC_TO_DEVICE: usize = 100;

/// Largest sync answer read: [`MAX_SYNC_TO_DEVICE`] messages of at most 64 KiB each (the bound
/// of [`crate::crypto::to_device`]) and the rest of a filtered sync.
const MAX_SYNC_BYTES: usize = MAX_SYNC_TO_DEVICE * 64 * 1024 + 64 * 1024;

/// What one sync brought.
#[derive(Debug)]
pub struct CaughtUp {
    /// The to-device events as the homeserver sent them (`sender`, `type`, `content`).
    pub events: Vec<Value>,
    /// The token the next sync starts from.
    pub next_batch: String,
}

impl Client {
    /// The to-device messages of `ghost`'s `device` after `since` (all it holds without one).
    pub async fn sync_to_device(
        &self,
        ghost: &UserId,
        device: &DeviceId,
        since: Option<&str>,
    ) -> Result<CaughtUp, ClientError> {
        let mut request = sync_events::v3::Request::new();
        request.filter = Some(sync_events::v3::Filter::FilterDefinition(FilterDefinition::ignore_all()));
        request.since = since.map(str::to_owned);
        request.timeout = Some(Duration::ZERO);
        request.set_presence = PresenceState::Offline;
        let mut identity = AppserviceUserIdentity::new(ghost);
        identity.device_id = Some(device);
        let response = self.call_bounded(request, identity, MAX_SYNC_BYTES).await?;
        let events = response
            .to_device
            .events
            .iter()
            .filter_map(|raw| serde_json::from_str::<Value>(raw.json().get()).ok())
            .collect();
        Ok(CaughtUp { events, next_batch: response.next_batch })
    }
}
