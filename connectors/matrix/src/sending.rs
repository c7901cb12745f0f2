//! Where a ghost's event goes: in the clear into an unencrypted room, encrypted with the
//! ghost's device into an encrypted one (docs/engine.md, "Encrypted rooms: plan").
//!
//! The room's encryption is asked of the homeserver before every send, for the reasons
//! [`crate::cleartext`] gives: a transaction that switched encryption on may be late or on
//! another replica. The answer decides the whole send, not only its last call: a file bound for
//! an encrypted room is sealed before it is uploaded ([`MatrixConnector::stored_sealed`]), so
//! the homeserver never holds its plaintext either. With `[matrix] encryption = "off"` (no
//! ghost devices) an encrypted room is refused as before, and an algorithm other than Megolm
//! too: the bridge would not know how to encrypt for it. With `"require"` it is the other way
//! round: a room in the clear carries nothing (the bridge's own notices excepted), and the
//! portals the bridge opens are encrypted from their first event.

use dm3_bridge_connector::{ConnectorError, Unsupported};
use ruma::{OwnedEventId, RoomId, UserId};
use serde_json::{Map, Value};

use crate::connector::{MatrixConnector, classify};
use crate::crypto::SendError;
use crate::crypto::account::MEGOLM_ALGORITHM;
use crate::encryption::RoomEncryption;
use crate::outgoing::{Route, Target};
use crate::room_state::RoomFacts;

/// The reason given for a room in the clear with `[matrix] encryption = "require"`.
pub const CLEAR_NOT_BRIDGED: &str =
    "this room is not end-to-end encrypted, and this DM3 bridge carries messages only in encrypted rooms";

impl MatrixConnector {
    /// How `ghost`'s next event reaches `room`, asked of the homeserver now; an encrypted room
    /// the connector cannot encrypt for is refused ([`MatrixConnector::refuse_cleartext`]).
    pub(crate) async fn route(&self, ghost: &UserId, room: &RoomId) -> Result<Route, ConnectorError> {
        match self.client().room_encryption(ghost, room).await.map_err(classify)? {
            RoomEncryption::Unencrypted if self.requires_encryption() => {
                Err(Unsupported::Blocked(CLEAR_NOT_BRIDGED.to_owned()).into())
            }
            RoomEncryption::Unencrypted => Ok(Route::Clear),
            RoomEncryption::Encrypted { algorithm } => match self.devices() {
                Some(devices) if algorithm == MEGOLM_ALGORITHM && devices.can_send() => {
                    Ok(Route::Encrypted(devices.clone()))
                }
                _ => Err(self.refuse_cleartext(ghost, room, &algorithm).await),
            },
        }
    }

    /// `facts` as the connector carries them: where it encrypts (ghost devices that can send,
    /// a Megolm room), an encrypted room is a room like any other, so a DM switched to
    /// encrypted stays live and an encrypted DM is joined. With `require`, a room in the clear
    /// is refused, in the words its members and the DM3 user are shown.
    pub(crate) fn as_carried(&self, mut facts: RoomFacts) -> Result<RoomFacts, String> {
        if self.requires_encryption() && facts.encryption.is_none() {
            return Err(CLEAR_NOT_BRIDGED.to_owned());
        }
        // Encryption is no reason to decline a room the ghost can read (its user's messages
        // are opened, `crate::encrypted_inbound`) or write to (in Megolm).
        let megolm = facts.encryption.as_deref() == Some(MEGOLM_ALGORITHM);
        if megolm
            && (self.reads_encrypted_rooms() || self.devices().is_some_and(|devices| devices.can_send()))
        {
            facts.encryption = None;
        }
        Ok(facts)
    }

    /// Sends `content` of `event_type` along `route` as `to` says.
    pub(crate) async fn post(
        &self,
        route: &Route,
        to: Target<'_>,
        event_type: &str,
        content: &Map<String, Value>,
    ) -> Result<OwnedEventId, ConnectorError> {
        let Target { ghost, room, txn, timestamp_ms, attempt } = to;
        match route {
            Route::Clear => self
                .client()
                .send_raw(ghost, room, txn, timestamp_ms, event_type, content, attempt)
                .await
                .map_err(classify),
            Route::Encrypted(devices) => devices
                .send_encrypted(ghost, room, txn, timestamp_ms, event_type, content)
                .await
                .map_err(send_error),
        }
    }
}

fn send_error(error: SendError) -> ConnectorError {
    tracing::warn!(%error, "an encrypted send failed");
    match error {
        SendError::Device(crate::crypto::DeviceError::Homeserver(e)) => classify(e),
        e if e.is_retryable() => ConnectorError::Transient(e.to_string()),
        e => ConnectorError::Permanent(e.to_string()),
    }
}
