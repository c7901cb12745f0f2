//! A ghost that takes part in an encrypted room gets its device.
//!
//! Members' clients share a room's keys only with the devices they know of when they send, so
//! the ghost's device must exist, with its keys published, as early as the bridge learns the
//! ghost is in an encrypted room: when the portal's room is checked and found encrypted, and
//! when a send is refused by the gate ([`crate::cleartext`]).

use ruma::UserId;

use crate::connector::MatrixConnector;

impl MatrixConnector {
    /// Gives `ghost`, found in an encrypted room, its device and published keys
    /// ([`crate::crypto::devices`]) if the connector makes devices: members' clients then
    /// share their room keys with it. A failure is logged and tried again the next time the
    /// ghost meets an encrypted room; it never fails what the ghost was doing.
    pub(crate) async fn take_part_encrypted(&self, ghost: &UserId) {
        let Some(devices) = self.devices() else { return };
        if let Err(error) = devices.ensure(ghost).await {
            tracing::warn!(%ghost, %error, "the ghost's device is not ready; tried again at its next encrypted room");
        }
    }
}
