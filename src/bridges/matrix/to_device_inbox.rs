//! The node's [`ToDeviceInbox`]: ghost devices' to-device messages kept in the database until
//! opened, and each device's catch-up token ([`crate::store::to_device_inbox`], migration 0023).
//!
//! The messages are kept as received: their payload is an Olm ciphertext only the ghost's
//! device opens (its keys are sealed in [`super::olm_store`]), and their metadata (sender,
//! recipient) is what the homeserver already knows. Counted by
//! [`MATRIX_TO_DEVICE_MESSAGES`]: per way in (`push`, `catch_up`), whether each was new or a
//! message kept before, so the operator sees what the catch-up recovered.

use dm3_bridge_connector::BoxFuture;
use dm3_bridge_matrix::crypto::{
    InboxWrite, KeptToDevice, OlmStoreError, ToDeviceEvent, ToDeviceInbox, Unopened, Via,
};
use ruma::{OwnedDeviceId, OwnedUserId, UserId};
use serde_json::{Map, Value};

use super::olm_store::{SealedOlmStore, failed};
use crate::store::{ToDeviceKeep, ToDeviceRow};
use crate::telemetry::metrics::MATRIX_TO_DEVICE_MESSAGES;

fn keep(message: &InboxWrite) -> Result<ToDeviceKeep, OlmStoreError> {
    Ok(ToDeviceKeep {
        user_id: message.event.to_user.to_string(),
        device_id: message.event.to_device.to_string(),
        digest: message.digest.clone(),
        sender: message.event.sender.to_string(),
        event_type: message.event.event_type.clone(),
        content: serde_json::to_string(&message.event.content).map_err(failed)?,
        via: message.via.as_str(),
    })
}

/// Counts `total` messages that came `via`, `new` of them not kept before.
fn count(via: Via, total: usize, new: u64) {
    let total = u64::try_from(total).unwrap_or(u64::MAX);
    let via = via.as_str();
    metrics::counter!(MATRIX_TO_DEVICE_MESSAGES, "via" => via, "outcome" => "new").increment(new);
    metrics::counter!(MATRIX_TO_DEVICE_MESSAGES, "via" => via, "outcome" => "duplicate")
        .increment(total.saturating_sub(new));
}

fn pending(ghost: &UserId, device: &OwnedDeviceId, row: ToDeviceRow) -> Option<KeptToDevice> {
    let content: Map<String, Value> = serde_json::from_str(&row.content).ok()?;
    Some(KeptToDevice {
        seq: u64::try_from(row.seq).ok()?,
        event: ToDeviceEvent {
            sender: ruma::UserId::parse(&row.sender).ok()?,
            to_user: ghost.to_owned(),
            to_device: device.clone(),
            event_type: row.event_type,
            content,
        },
        via: Via::parse(&row.via),
        attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
        created_at_ms: row.created_at,
    })
}

impl ToDeviceInbox for SealedOlmStore {
    fn keep_to_device<'a>(
        &'a self,
        messages: Vec<InboxWrite>,
    ) -> BoxFuture<'a, Result<usize, OlmStoreError>> {
        Box::pin(async move {
            let total = messages.len();
            let via = messages.first().map_or(Via::Push, |m| m.via);
            let rows = messages.iter().map(keep).collect::<Result<Vec<_>, _>>()?;
            let new = self.store().keep_to_device(rows, crate::clock::now_ms()).await.map_err(failed)?;
            count(via, total, new);
            Ok(usize::try_from(new).unwrap_or(usize::MAX))
        })
    }

    fn keep_caught_up<'a>(
        &'a self,
        ghost: &'a UserId,
        device: &'a OwnedDeviceId,
        messages: Vec<InboxWrite>,
        next_batch: &'a str,
    ) -> BoxFuture<'a, Result<usize, OlmStoreError>> {
        Box::pin(async move {
            let total = messages.len();
            let rows = messages.iter().map(keep).collect::<Result<Vec<_>, _>>()?;
            let new = self
                .store()
                .keep_caught_up(ghost.as_str(), device.as_str(), rows, next_batch, crate::clock::now_ms())
                .await
                .map_err(failed)?;
            count(Via::CatchUp, total, new);
            Ok(usize::try_from(new).unwrap_or(usize::MAX))
        })
    }

    fn since<'a>(
        &'a self,
        ghost: &'a UserId,
        device: &'a OwnedDeviceId,
    ) -> BoxFuture<'a, Result<Option<String>, OlmStoreError>> {
        Box::pin(async move {
            self.store().to_device_since(ghost.as_str(), device.as_str()).await.map_err(failed)
        })
    }

    fn pending_devices<'a>(
        &'a self,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(OwnedUserId, OwnedDeviceId)>, OlmStoreError>> {
        Box::pin(async move {
            let rows = self.store().to_device_pending_devices(limit).await.map_err(failed)?;
            Ok(rows
                .into_iter()
                .filter_map(|(user, device)| {
                    Some((UserId::parse(&user).ok()?, OwnedDeviceId::from(device.as_str())))
                })
                .collect())
        })
    }

    fn pending_to_device<'a>(
        &'a self,
        ghost: &'a UserId,
        device: &'a OwnedDeviceId,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<KeptToDevice>, OlmStoreError>> {
        Box::pin(async move {
            let rows = self
                .store()
                .to_device_pending(ghost.as_str(), device.as_str(), limit)
                .await
                .map_err(failed)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let seq = row.seq;
                match pending(ghost, device, row) {
                    Some(message) => out.push(message),
                    None => {
                        // Kept by this node, so well formed; a row that is not can never open.
                        tracing::warn!(%ghost, seq, "a kept to-device message could not be read; dropped");
                        self.store().settle_to_device(seq, true).await.map_err(failed)?;
                    }
                }
            }
            Ok(out)
        })
    }

    fn settle_unopened<'a>(
        &'a self,
        seq: u64,
        outcome: Unopened,
    ) -> BoxFuture<'a, Result<(), OlmStoreError>> {
        Box::pin(async move {
            let seq = i64::try_from(seq).map_err(failed)?;
            self.store().settle_to_device(seq, outcome == Unopened::Dropped).await.map_err(failed)
        })
    }
}
